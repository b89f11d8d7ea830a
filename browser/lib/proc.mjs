// Child processes of the tests: the whole stack (bin/optio-up, the
// supervisor) and a relay of the tests' own (bin/optio-relay) that they can
// stop and start again.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";

// start runs bin with env, logging to logFile, and resolves once ready()
// holds (polled), or rejects when the process exits first or timeout passes.
// When readyLine is given, ready also needs the process to have printed it.
export async function start(name, bin, env, logFile, ready, timeoutMs, readyLine) {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run make build first`);
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(bin, [], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  let out = "", sawLine = !readyLine;
  if (readyLine) {
    child.stdout.on("data", (b) => { if (!sawLine) { out += b; sawLine = out.includes(readyLine); } });
  }
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  let gone = null;
  exited.then((r) => { gone = r; });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`${name} exited (${gone.code ?? gone.signal}) before it was ready: see ${logFile}`);
    if (sawLine && await ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${name} not ready within ${timeoutMs / 1000} s: see ${logFile}`);
    }
    await sleep(200);
  }
  return {
    pid: child.pid,
    // stop sends SIGTERM (SIGINT for optio-up) and waits; SIGKILL after graceMs.
    async stop(signal = "SIGTERM", graceMs = 30_000) {
      if (gone) return gone;
      child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const r = await exited;
      clearTimeout(t);
      log.end();
      return r;
    },
  };
}

export async function httpOK(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
    s.on("error", rej);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function ensureDir(...parts) {
  const d = join(...parts);
  mkdirSync(d, { recursive: true });
  return d;
}
