// A Nuxt Image custom provider for ProgImage, without dependencies. In nuxt.config:
//   image: { providers: { progimage: { provider: "~/providers/progimage.js",
//                                     options: { baseURL: "https://img.example.com" } } } }
// (a copy of this file beside progimage-url.js). `src` is an image id or an http(s) URL.
import { imageUrl } from "./progimage-url.js";

// Nuxt's `fit` names, in ProgImage's resize modes. `inside` and `outside` both keep the
// aspect; ProgImage has one mode for that, fitting inside the box.
const FITS = { cover: "fill", contain: "pad", fill: "stretch", inside: "resize", outside: "resize" };
const FORMATS = { jpg: "jpeg", jpeg: "jpeg", png: "png", webp: "webp", avif: "avif", jxl: "jxl", gif: "gif" };

export function operations(modifiers = {}) {
  const { width, height, fit, format, quality, background } = modifiers;
  const ops = {};
  if (width || height) {
    // With both sides Nuxt means `cover` unless told otherwise; one side is always a fit.
    const mode = width && height ? FITS[fit ?? "cover"] ?? "fill" : "resize";
    ops[mode] = `${width || ""}x${height || ""}`;
  }
  if (background) ops.bg = String(background).replace(/^#/, "").toLowerCase();
  if (quality) ops.q = quality;
  ops.fmt = format ? FORMATS[String(format).toLowerCase()] ?? format : "auto";
  return ops;
}

export function getImage(src, { modifiers = {}, baseURL = "" } = {}) {
  const source = String(src).replace(/^\/+/, "");
  return { url: imageUrl(source, operations(modifiers), baseURL.replace(/\/+$/, "")) };
}
