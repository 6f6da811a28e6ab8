// A tiny static server for the chat page (Node's http module, no dependencies): serves a folder
// (the Trunk build, www/dist) and named model files under /models/, with exact Content-Length and
// no HTTP caching, and logs every request. For tests it can cut a model download short:
//   /interrupt/<path>  sends the first half of <path>'s bytes, then destroys the socket;
//   /flaky/<path>      does that on the first GET for <path> only, then serves it whole.
//
//   node www/serve.mjs --root www/dist --model default.gguf=path/to/model.gguf [--port 8080]
//
// `serve()` is the same server for scripts (the browser test counts its requests).

import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Starts serving; resolves to `{ port, url, requests, close() }` once listening. */
export function serve({ root, models = {}, port = 0, host = "127.0.0.1", quiet = false }) {
  const rootDir = resolve(root);
  const requests = [];
  const interrupted = new Set();
  const server = createServer((req, res) => {
    const entry = { method: req.method, path: decodeURIComponent(new URL(req.url, "http://x").pathname) };
    requests.push(entry);
    let mode = "whole";
    let path = entry.path;
    for (const prefix of ["/interrupt/", "/flaky/"]) {
      if (path.startsWith(prefix)) {
        const rest = "/" + path.slice(prefix.length);
        // `/flaky/` cuts the first download short; a HEAD (the page asks sizes) sends no body.
        const once = prefix === "/flaky/";
        mode = once && interrupted.has(rest) ? "whole" : "half";
        if (once && req.method === "GET") interrupted.add(rest);
        path = rest;
      }
    }
    const file = locate(rootDir, models, path);
    const done = (status, bytes, complete) => {
      Object.assign(entry, { status, bytes, complete, mode });
      if (!quiet) console.log(JSON.stringify(entry));
    };
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return done(404, 0, true);
    }
    const size = file.size;
    const headers = {
      "content-type": TYPES[extname(file.path)] ?? "application/octet-stream",
      "content-length": String(size),
      // Every load must reach this server: tests count requests, and models are cached by the page.
      "cache-control": "no-store",
    };
    res.writeHead(200, headers);
    if (req.method === "HEAD") {
      res.end();
      return done(200, 0, true);
    }
    const end = mode === "half" ? Math.floor(size / 2) : size;
    const stream = createReadStream(file.path, { start: 0, end: Math.max(end - 1, 0) });
    let sent = 0;
    stream.on("data", (chunk) => (sent += chunk.length));
    stream.on("error", () => res.destroy());
    if (mode === "half") {
      stream.pipe(res, { end: false });
      // Let the half reach the client, then cut the connection mid-body.
      stream.on("end", () => setTimeout(() => { res.destroy(); done(200, sent, false); }, 100));
    } else {
      stream.pipe(res);
      res.on("finish", () => done(200, sent, true));
      res.on("close", () => entry.status ?? done(200, sent, sent === size));
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      const actual = server.address().port;
      ok({
        port: actual,
        url: `http://${host}:${actual}/`,
        requests,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
      });
    });
  });
}

/** The file a URL path names: a model from `models`, or a file under the root (never outside it). */
function locate(rootDir, models, path) {
  let target;
  if (path.startsWith("/models/") && models[path.slice("/models/".length)]) {
    target = resolve(models[path.slice("/models/".length)]);
  } else {
    const rel = normalize(path).replace(/^([/\\])+/, "");
    target = join(rootDir, rel === "" ? "index.html" : rel);
    if (target !== rootDir && !target.startsWith(rootDir + sep)) return null;
  }
  try {
    let stat = statSync(target);
    if (stat.isDirectory()) {
      target = join(target, "index.html");
      stat = statSync(target);
    }
    return stat.isFile() ? { path: target, size: stat.size } : null;
  } catch {
    return null;
  }
}

function parseArgs(argv) {
  const args = { root: "www/dist", models: {}, port: 8080 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--root") args.root = value;
    else if (flag === "--port") args.port = Number(value);
    else if (flag === "--model") {
      const eq = value?.indexOf("=") ?? -1;
      if (eq <= 0) throw new Error(`--model wants NAME=PATH, got ${value}`);
      args.models[value.slice(0, eq)] = value.slice(eq + 1);
    } else throw new Error(`unknown argument ${flag}`);
    i++;
  }
  return args;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = parseArgs(process.argv.slice(2));
  const { url } = await serve(args);
  const names = Object.keys(args.models);
  console.log(`serving ${args.root} at ${url}` + (names.length ? ` (models: ${names.map((n) => "/models/" + n).join(", ")})` : ""));
}
