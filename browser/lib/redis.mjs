// A minimal Redis pub/sub listener (RESP over a TCP socket) that records
// when each run event arrives, to measure how long a counter change in
// Redis takes to show in the browser. Only what SUBSCRIBE needs is parsed.
import net from "node:net";

export function subscribe(redisURL, channel) {
  const u = new URL(redisURL);
  const events = []; // {at, run}
  const sock = net.connect({ host: u.hostname || "127.0.0.1", port: Number(u.port || 6379) });
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let resolveReady, rejectReady;
  const ready = new Promise((res, rej) => { resolveReady = res; rejectReady = rej; });
  sock.on("error", (e) => rejectReady(e));
  sock.on("connect", () => {
    if (u.password) sock.write(command("AUTH", ...(u.username ? [decodeURIComponent(u.username)] : []), decodeURIComponent(u.password)));
    sock.write(command("SUBSCRIBE", channel));
  });
  sock.on("data", (chunk) => {
    const at = Date.now();
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const r = parse(buf, 0);
      if (!r) break;
      buf = buf.subarray(r.end);
      const v = r.value;
      if (Array.isArray(v) && v[0] === "message") {
        try { events.push({ at, run: JSON.parse(v[2]) }); } catch { /* not a run */ }
      } else if (Array.isArray(v) && v[0] === "subscribe") {
        resolveReady();
      } else if (v instanceof Error) {
        rejectReady(v);
      }
    }
  });
  return {
    ready,
    events,
    close() { sock.destroy(); },
  };
}

function command(...args) {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");
}

// parse reads one RESP value at off; null when buf does not hold it all yet.
function parse(buf, off) {
  const nl = buf.indexOf("\r\n", off);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString("utf8", off + 1, nl);
  switch (type) {
    case "+": return { value: line, end: nl + 2 };
    case "-": return { value: new Error(line), end: nl + 2 };
    case ":": return { value: Number(line), end: nl + 2 };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, end: nl + 2 };
      if (buf.length < nl + 2 + n + 2) return null;
      return { value: buf.toString("utf8", nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
    }
    case "*": {
      const n = Number(line);
      const out = [];
      let p = nl + 2;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        out.push(r.value);
        p = r.end;
      }
      return { value: out, end: p };
    }
  }
  throw new Error(`unexpected RESP type ${type}`);
}
