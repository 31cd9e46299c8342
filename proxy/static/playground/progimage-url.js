// ProgImage URLs without dependencies: operations in canonical order, and srcset strings.
// The order of proxy.ops.REGISTRY (tests/test_playground_order.py keeps the two in step).
const ORDER = [
  "preset", "page", "at", "crop", "trim", "rotate", "flip", "flop",
  "resize", "fill", "thumbnail", "pad", "stretch", "gravity", "enlarge", "dpr", "padding",
  "brightness", "contrast", "saturation", "hue", "blur", "sharpen", "pixelate", "faces", "grayscale",
  "round", "watermark", "text", "bg", "q", "lossless", "palette", "maxbytes", "fmt", "meta", "download",
  "info", "expires"
];
export const MODES = ["resize", "fill", "thumbnail", "pad", "stretch"];

export function imageUrl(source, ops = {}, base = "") {
  const parts = ORDER.filter((name) => ops[name] != null && ops[name] !== false)
    .flatMap((name) => (ops[name] === true ? [name] : [name, String(ops[name])]));
  return `${base}/${[...parts, source].join("/")}`;
}

export function srcset(source, widths, ops = {}, base = "") {
  const mode = MODES.find((m) => ops[m]) ?? "resize";
  const [w0, h0] = String(ops[mode] ?? "x").split("x").map(Number);
  return widths.map((w) => {
    const box = w0 && h0 ? `${w}x${Math.max(1, Math.round((h0 * w) / w0))}` : `${w}x`;
    return `${imageUrl(source, { ...ops, dpr: null, [mode]: box }, base)} ${w}w`;
  }).join(", ");
}
