// A Next.js `next/image` loader for ProgImage, without dependencies. In next.config.js:
//   images: { loader: "custom", loaderFile: "./progimage-next-loader.js" }
// (a copy of this file beside progimage-url.js), and NEXT_PUBLIC_PROGIMAGE_URL set to the
// service's (or its CDN's) origin. `src` is an image id or an http(s) URL.
import { imageUrl } from "./progimage-url.js";

// Next.js asks for one width per candidate of its srcset; the height follows the aspect.
// fmt/auto lets the service answer AVIF or WebP to browsers that accept them.
export function createLoader({ base = "", ops = {} } = {}) {
  return function progimageLoader({ src, width, quality }) {
    const source = String(src).replace(/^\/+/, "");
    return imageUrl(source, { fmt: "auto", ...ops, resize: `${width}x`, q: quality ?? null }, base);
  };
}

const env = globalThis.process?.env ?? {};
export default createLoader({ base: env.NEXT_PUBLIC_PROGIMAGE_URL ?? "" });
