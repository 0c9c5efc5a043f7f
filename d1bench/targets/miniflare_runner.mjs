// Starts Miniflare with d1bench's REST Worker and one D1 database, on
// 127.0.0.1 only, and stops it cleanly on SIGTERM/SIGINT/SIGHUP (Miniflare's
// dispose() also stops its workerd child).  d1bench.targets.d1.local runs it:
//
//   node miniflare_runner.mjs --miniflare PATH --worker PATH --persist DIR
//        [--port N] [--database-id ID] [--account-id ID] [--compat-date D] [--watch-stdin]
//        [--var NAME=VALUE ...]
//
// --var sets a plain-text binding of the Worker (its cache options); a KV
// namespace CACHE_KV, kept in memory, is always bound.
//
// The API token comes in the environment variable D1BENCH_LOCAL_D1_TOKEN, never
// on the command line (which every user of the machine can read in /proc); it
// is removed from the environment before workerd starts.  When ready, one JSON
// line {"event": "ready", "url", "port", "pid"} is written to stdout.
// With --watch-stdin the server stops when its stdin closes, so that a parent
// that dies without cleaning up (SIGKILL) does not leave it running.

import { pathToFileURL } from "node:url";
import { dirname, resolve } from "node:path";

function parseArgs(argv) {
  const args = { port: 0, databaseId: "d1bench-local", accountId: "d1bench-local-account",
                 compatDate: "2026-07-01", watchStdin: false, vars: {} };
  const names = { "--miniflare": "miniflare", "--worker": "worker", "--persist": "persist",
                  "--port": "port", "--database-id": "databaseId", "--account-id": "accountId",
                  "--compat-date": "compatDate" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--watch-stdin") { args.watchStdin = true; continue; }
    if (flag === "--var" && i + 1 < argv.length) {
      const [name, ...value] = argv[++i].split("=");
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || ["TOKEN", "ACCOUNT_ID", "DATABASE_ID"].includes(name)) {
        throw new Error(`bad --var ${JSON.stringify(name)}`);
      }
      args.vars[name] = value.join("=");
      continue;
    }
    const key = names[flag];
    if (!key || i + 1 >= argv.length) throw new Error(`bad argument ${JSON.stringify(flag)}`);
    args[key] = argv[++i];
  }
  for (const key of ["miniflare", "worker", "persist"]) {
    if (!args[key]) throw new Error(`missing --${key}`);
  }
  args.port = Number(args.port);
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    throw new Error(`bad --port ${args.port}`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const token = process.env.D1BENCH_LOCAL_D1_TOKEN;
  delete process.env.D1BENCH_LOCAL_D1_TOKEN;
  if (!token) throw new Error("D1BENCH_LOCAL_D1_TOKEN is not set");

  const { Miniflare, Log, LogLevel } = await import(pathToFileURL(resolve(args.miniflare)).href);
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: args.port,
    modules: true,
    scriptPath: resolve(args.worker),
    // Module names are paths relative to modulesRoot (default: the working
    // directory, which d1bench sets elsewhere); workerd refuses "..".
    modulesRoot: dirname(resolve(args.worker)),
    compatibilityDate: args.compatDate,
    bindings: { ...args.vars, TOKEN: token, ACCOUNT_ID: args.accountId, DATABASE_ID: args.databaseId },
    d1Databases: { DB: args.databaseId },
    kvNamespaces: { CACHE_KV: "d1bench-cache" },
    d1Persist: resolve(args.persist),
    log: new Log(LogLevel.WARN),
    // Without this Miniflare fetches a Request.cf sample from the internet at
    // start-up (a 3 s timeout offline); the local D1 needs no network at all.
    cf: false,
  });

  let stopping = null;
  const stop = (why) => {
    if (!stopping) {
      stopping = (async () => {
        // Should dispose() hang, leave anyway: the caller kills the process group.
        const guard = setTimeout(() => process.exit(3), 10_000);
        guard.unref();
        try {
          await mf.dispose();
        } finally {
          process.stderr.write(`miniflare_runner: stopped (${why})\n`);
          process.exit(0);
        }
      })();
    }
    return stopping;
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => stop(signal));
  if (args.watchStdin) {
    process.stdin.on("end", () => stop("stdin closed"));
    process.stdin.on("error", () => stop("stdin error"));
    process.stdin.resume();
  }

  const url = await mf.ready;
  process.stdout.write(JSON.stringify({ event: "ready", url: url.href, port: Number(url.port),
                                        pid: process.pid }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`miniflare_runner: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
