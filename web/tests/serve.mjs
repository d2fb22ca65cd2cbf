// The static file server the browser tests and benchmarks load their pages from: on
// 127.0.0.1, a free port.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, normalize } from "node:path";

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };

/**
 * Serves `locate(path)` (a URL path to a file path) and the bytes of `extra[path]`; paths with
 * `..` are refused, missing files are 404. Resolves to { server, origin }.
 */
export async function serveFiles(locate, extra = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) return res.writeHead(400).end();
    if (extra[path]) {
      const type = TYPES[extname(path)] ?? "application/octet-stream";
      return res.writeHead(200, { "content-type": type, "content-length": extra[path].length }).end(extra[path]);
    }
    try {
      const body = await readFile(locate(path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "content-length": body.length }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}
