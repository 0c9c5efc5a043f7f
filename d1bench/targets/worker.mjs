// The bench Worker: one module for the local D1 (Miniflare) and for the
// Worker `d1bench worker init` writes and `wrangler deploy` ships.  It answers
// Cloudflare's D1 REST API (`/client/v4/accounts/{account}/d1/database/{db}/query`
// and `/raw`) over the `DB` binding, so that d1bench's D1 client talks to it
// exactly as it talks to Cloudflare, but from inside a Worker: at the Worker's
// rates, with read replication (the Sessions API) and the cache the seed
// describes, as options whose effect is measured.
//
// Statements go through the binding's own transport (`env.DB.fetcher`, the
// channel `prepare().all()` and `batch()` use inside workerd) with
// `resultsFormat=ROWS_AND_COLUMNS`, rather than through `all()`/`raw()`:
// `raw()` drops `meta` (rows_read, rows_written, duration), and the objects of
// `all()` lose repeated column names and reorder numeric ones.  Sessions ride
// the same channel as the binding's `withSession()` does: the constraint or
// bookmark in the `x-cf-d1-session-commit-token` header, the new bookmark in
// the answer's.  (`x-d1bench-binding: api-*` goes through the public API
// instead, to measure whether reusing a session object matters.)
//
// Bindings: DB (D1), TOKEN (the shared secret: `wrangler secret put TOKEN`
// when deployed; set by miniflare_runner.mjs locally), ACCOUNT_ID and
// DATABASE_ID (the ids of the REST path), and the cache options CACHE
// ("off", "memory:TTL[,SIZE]" or "kv:TTL", TTL in seconds), CACHE_INVALIDATE
// ("1": a write empties the cache), CACHE_CHECK ("1": every hit is also run
// against the database, to count stale answers exactly) and CACHE_KV (the KV
// namespace of "kv:").
//
// Per-request headers: x-d1bench-session (none | first-primary |
// first-unconstrained), x-d1bench-bookmark (continue a session from it).
// Every statement's meta gains: bookmark (the session's after it), session_in
// (the constraint or bookmark the request carried), served_by_region, served_by_primary,
// total_attempts, sql_duration_ms (null where D1 leaves them undefined, as
// Miniflare does), worker_ms (time inside the Worker), and cache (off, miss,
// hit, bypass) with rows_read_saved, cache_age_ms and stale on hits.

const API = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/(query|raw|export)\/?$/;
const DUMP = /^\/d1bench-dump\/([0-9a-f]{32})$/;
const SESSION_HEADER = "x-cf-d1-session-commit-token";
const CONSTRAINTS = { "first-primary": "first-primary", "first-unconstrained": "first-unconstrained" };

// Finished exports, by the random id in their "signed" URL: the polling export
// answers `complete` at once (the dump is built in one call) and the download is
// served from here, without the token, as Cloudflare serves it from R2.
const dumps = new Map();

function envelope(status, body, extraHeaders = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...extraHeaders },
  });
}

function failure(status, code, message) {
  return envelope(status, { success: false, errors: [{ code, message }], messages: [], result: null });
}

// Comparing the secret in constant time keeps its length and content from
// leaking through response timing.
function sameToken(given, expected) {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  if (a.byteLength !== b.byteLength) return false;
  return crypto.subtle.timingSafeEqual(a, b);
}

function authorized(request, env) {
  // No secret configured means nobody gets in (a deploy before `wrangler secret put`).
  if (typeof env.TOKEN !== "string" || env.TOKEN.length === 0) return false;
  const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.get("authorization") ?? "");
  return bearer !== null && sameToken(bearer[1].trim(), env.TOKEN);
}

class BadRequest extends Error {}

// One statement of the body, checked the way the REST API documents it:
// `sql` a string, `params` an optional array of scalars.
function statement(item, where) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new BadRequest(`${where} must be an object with "sql" and optional "params"`);
  }
  if (typeof item.sql !== "string") throw new BadRequest(`${where}.sql must be a string`);
  const params = item.params ?? [];
  if (!Array.isArray(params)) throw new BadRequest(`${where}.params must be an array`);
  return {
    sql: item.sql,
    params: params.map((value, i) => {
      // Booleans become 1/0 as the Workers binding binds them.
      if (typeof value === "boolean") return value ? 1 : 0;
      if (value === null || typeof value === "number" || typeof value === "string") return value;
      throw new BadRequest(`${where}.params[${i}] must be a string, number, boolean or null`);
    }),
  };
}

function statements(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new BadRequest('body must be {"sql", "params"} or {"batch": [...]}');
  }
  if (body.batch !== undefined) {
    if (!Array.isArray(body.batch) || body.batch.length === 0) {
      throw new BadRequest('"batch" must be a non-empty array of {"sql", "params"}');
    }
    return body.batch.map((item, i) => statement(item, `batch[${i}]`));
  }
  return [statement(body, "body")];
}

function asObjects(columns, rows) {
  return rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, row[i]])));
}

// --- talking to D1 ---------------------------------------------------------------

// `session` is what goes in the session header: a constraint, a bookmark, or
// null (no session: the primary, as env.DB.prepare() does).
async function run(env, queries, session) {
  const transport = env.DB && env.DB.fetcher;
  if (!transport || typeof transport.fetch !== "function") {
    throw new Error("the D1 binding exposes no transport (runtime version not supported)");
  }
  const headers = { "content-type": "application/json" };
  if (session) headers[SESSION_HEADER] = session;
  const response = await transport.fetch("http://d1/query?resultsFormat=ROWS_AND_COLUMNS", {
    method: "POST", headers, body: JSON.stringify(queries),
  });
  const bookmark = response.headers.get(SESSION_HEADER);
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: an exception inside the database object; its first line says what.
    return { ok: false, status: 500, message: text.split("\n")[0] || `HTTP ${response.status}` };
  }
  if (Array.isArray(data)) return { ok: true, results: data, bookmark: session ? bookmark : null };
  return { ok: false, status: 400, message: String(data.error ?? "unknown D1 error") };
}

// The public Sessions API, one session object per request or one per isolate:
// only for measuring what reusing it is worth (its meta is the same; its rows
// come back as objects, turned back into columns and rows here).
let reusedSession = null;
async function runThroughApi(env, queries, session, reuse) {
  let db = null;
  if (reuse) db = reusedSession ??= env.DB.withSession(session ?? "first-primary");
  else db = env.DB.withSession(session ?? "first-primary");
  try {
    const stmts = queries.map((q) => db.prepare(q.sql).bind(...q.params));
    const out = stmts.length === 1 ? [await stmts[0].all()] : await db.batch(stmts);
    const results = out.map((r) => {
      const columns = r.results.length ? Object.keys(r.results[0]) : [];
      return { success: r.success, meta: r.meta,
               results: { columns, rows: r.results.map((o) => columns.map((c) => o[c])) } };
    });
    return { ok: true, results, bookmark: db.getBookmark() };
  } catch (e) {
    return { ok: false, status: 400, message: String(e && e.message ? e.message : e) };
  }
}

// --- the cache: the seed's two levels, as options --------------------------------

const memory = new Map(); // key -> {result, rowsRead, storedAt}; insertion order is LRU order
let memoryGeneration = 0; // bumped by each invalidation

function cacheOptions(env) {
  const spec = String(env.CACHE ?? "off").trim();
  if (spec === "" || spec === "off") return null;
  const m = /^(memory|kv):([0-9]*\.?[0-9]+)(?:,([0-9]+))?$/.exec(spec);
  if (!m || (m[1] === "kv" && m[3] !== undefined)) {
    throw new Error(`CACHE=${JSON.stringify(spec)}: expected off, memory:TTL[,SIZE] or kv:TTL`);
  }
  if (m[1] === "kv" && !env.CACHE_KV) throw new Error("CACHE=kv:... needs the CACHE_KV namespace binding");
  return { level: m[1], ttlMs: Number(m[2]) * 1000, size: m[3] === undefined ? 10000 : Number(m[3]),
           invalidate: env.CACHE_INVALIDATE === "1", check: env.CACHE_CHECK === "1" };
}

// Only a lone statement that reads can be answered from the cache; a write
// that happens to change nothing must still run every time.
function cacheable(queries) {
  if (queries.length !== 1) return false;
  const sql = queries[0].sql;
  return /^\s*(select|with)\b/i.test(sql) && !/\b(insert|update|delete|replace)\b/i.test(sql);
}

async function digest(text) {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Workers KV keeps a key at least 60 s; shorter TTLs are enforced here, from
// the time stored with the entry.  Invalidation bumps a generation number
// that is part of every key (KV cannot be emptied at once).
async function kvGeneration(env) {
  return (await env.CACHE_KV.get("d1bench:generation")) ?? "0";
}

async function cacheGet(env, opts, key, now, generation) {
  if (opts.level === "memory") {
    const entry = memory.get(key);
    if (!entry) return null;
    memory.delete(key);
    if (now - entry.storedAt >= opts.ttlMs) return null;
    memory.set(key, entry); // most recently used goes last
    return entry;
  }
  const entry = await env.CACHE_KV.get(`${generation}:${key}`, "json");
  if (!entry || now - entry.storedAt >= opts.ttlMs) return null;
  return entry;
}

// An answer read before a write but stored after that write's invalidation
// would be stale for its whole TTL: it is stored only if no invalidation came
// in between (`generation` is the one seen when the miss began).
async function cacheGeneration(env, opts) {
  return opts.level === "memory" ? String(memoryGeneration) : await kvGeneration(env);
}

async function cachePut(env, opts, key, entry, generation) {
  if ((await cacheGeneration(env, opts)) !== generation) return;
  if (opts.level === "memory") {
    memory.set(key, entry);
    while (memory.size > opts.size) memory.delete(memory.keys().next().value);
    return;
  }
  await env.CACHE_KV.put(`${generation}:${key}`, JSON.stringify(entry),
                         { expirationTtl: Math.max(60, Math.ceil(opts.ttlMs / 1000)) });
}

async function invalidate(env, opts) {
  if (opts.level === "memory") {
    memory.clear();
    memoryGeneration += 1;
    return;
  }
  const next = String(Number(await kvGeneration(env)) + 1);
  await env.CACHE_KV.put("d1bench:generation", next);
}

function wrote(results) {
  return results.some((r) => r.meta && (r.meta.changed_db === true || (r.meta.rows_written ?? 0) > 0));
}

// --- one request -----------------------------------------------------------------

function sessionOf(request) {
  const bookmark = (request.headers.get("x-d1bench-bookmark") ?? "").trim();
  if (bookmark) return bookmark;
  const mode = (request.headers.get("x-d1bench-session") ?? "none").trim();
  if (mode === "none") return null;
  if (!CONSTRAINTS[mode]) throw new BadRequest(`x-d1bench-session must be none, first-primary or first-unconstrained, not ${JSON.stringify(mode)}`);
  return CONSTRAINTS[mode];
}

// What D1 reports beside the five counters, named the same way on every
// target: undefined becomes null, so "D1 did not say" is visible in the trace.
function withFields(meta, extra) {
  return {
    ...meta,
    served_by_region: meta.served_by_region ?? null,
    served_by_primary: meta.served_by_primary ?? null,
    total_attempts: meta.total_attempts ?? null,
    sql_duration_ms: meta.timings?.sql_duration_ms ?? null,
    ...extra,
  };
}

function answer(env, queries, session, binding) {
  if (binding === "api-per-request" || binding === "api-reused") {
    return runThroughApi(env, queries, session, binding === "api-reused");
  }
  return run(env, queries, session);
}

async function query(request, env, endpoint) {
  let body, queries, session;
  try {
    body = await request.json();
  } catch (e) {
    return failure(400, 7400, `The request is malformed: ${e.message}`);
  }
  try {
    queries = statements(body);
    session = sessionOf(request);
  } catch (e) {
    if (e instanceof BadRequest) return failure(400, 7400, `The request is malformed: ${e.message}`);
    throw e;
  }
  const binding = request.headers.get("x-d1bench-binding") ?? "direct";
  const opts = cacheOptions(env);
  const useCache = opts !== null && cacheable(queries);
  let key = null;
  let extra = { cache: opts === null ? "off" : "bypass" };
  let results;
  let bookmark = session && !CONSTRAINTS[session] ? session : null;
  const started = Date.now();
  let hit = null;
  let generation = null;
  if (useCache) {
    key = await digest(JSON.stringify([endpoint, queries[0].sql, queries[0].params]));
    generation = await cacheGeneration(env, opts);
    hit = await cacheGet(env, opts, key, started, generation);
  }
  if (hit) {
    extra = { cache: "hit", rows_read_saved: hit.rowsRead, cache_age_ms: started - hit.storedAt,
              stale: null };
    if (opts.check) {
      // The database's answer at this moment: the hit is stale if it differs.
      const fresh = await run(env, queries, null);
      extra.stale = fresh.ok ? JSON.stringify(fresh.results[0].results) !== JSON.stringify(hit.result.results) : null;
      extra.check_rows_read = fresh.ok ? fresh.results[0].meta.rows_read : null;
    }
    const meta = { served_by: "d1bench-cache", duration: 0, changes: 0, last_row_id: null,
                   changed_db: false, rows_read: 0, rows_written: 0 };
    results = [{ success: true, results: hit.result.results, meta: withFields(meta, extra) }];
  } else {
    // A statement that may write empties the cache before it runs as well as after:
    // after alone leaves a window (the write committed, its invalidation not yet
    // done) in which hits answer what the database no longer holds.
    if (opts !== null && opts.invalidate && !useCache) await invalidate(env, opts);
    const outcome = await answer(env, queries, session, binding);
    if (!outcome.ok) return failure(outcome.status, 7500, outcome.message);
    bookmark = outcome.bookmark ?? bookmark;
    if (useCache) {
      const r = outcome.results[0];
      if (!wrote(outcome.results)) {
        await cachePut(env, opts, key, { result: { results: r.results }, rowsRead: r.meta.rows_read,
                                         storedAt: started }, generation);
      }
      extra = { cache: "miss" };
    }
    if (opts !== null && opts.invalidate && wrote(outcome.results)) await invalidate(env, opts);
    results = outcome.results.map((r) => ({ ...r, meta: withFields(r.meta, extra) }));
  }
  const workerMs = Date.now() - started;
  const result = results.map((r) => ({
    results:
      endpoint === "raw"
        ? { columns: r.results.columns, rows: r.results.rows }
        : asObjects(r.results.columns, r.results.rows),
    success: r.success,
    meta: { ...r.meta, bookmark, session_in: session, worker_ms: workerMs },
  }));
  return envelope(200, { success: true, errors: [], messages: [], result });
}

// Cloudflare's REST export, for a local database: Miniflare builds the dump with
// D1's own dump code (the `PRAGMA miniflare_d1_export` that `wrangler d1 export
// --local` sends), one statement per element, joined with newlines as wrangler does.
async function exportDump(request, env, url) {
  let body;
  try {
    body = await request.json();
  } catch (e) {
    return failure(400, 7400, `The request is malformed: ${e.message}`);
  }
  if (body === null || typeof body !== "object" || body.output_format !== "polling") {
    return failure(400, 7400, 'The request is malformed: output_format must be "polling"');
  }
  const options = body.dump_options ?? {};
  const tables = Array.isArray(options.tables) ? options.tables.map(String) : [];
  const response = await env.DB.fetcher.fetch("http://d1/query?resultsFormat=ROWS_AND_COLUMNS", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([{ sql: "PRAGMA miniflare_d1_export(?,?,?);",
                            params: [options.no_schema ? 1 : 0, options.no_data ? 1 : 0, ...tables] }]),
  });
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return envelope(200, { success: true, errors: [], messages: [], result: {
      success: false, type: "export", status: "error", at_bookmark: "local",
      error: text.split("\n")[0] || `HTTP ${response.status}` } });
  }
  const statements = (data.results && data.results[0]) || [];
  const id = [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  dumps.set(id, statements.join("\n"));
  return envelope(200, { success: true, errors: [], messages: [], result: {
    success: true, type: "export", status: "complete", at_bookmark: "local",
    messages: [`Generated ${statements.length} statements`],
    result: { filename: "dump.sql", signed_url: `${url.origin}/d1bench-dump/${id}` } } });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    // A finished export is fetched by its unguessable id alone, as a signed URL
    // is; any other path, even a wrong dump id, is answered 401 without the secret,
    // so a caller without it learns nothing, not even which paths exist.
    const dump = DUMP.exec(url.pathname);
    if (dump && request.method === "GET" && dumps.has(dump[1])) {
      const text = dumps.get(dump[1]);
      dumps.delete(dump[1]);
      return new Response(text, { status: 200, headers: { "content-type": "application/sql" } });
    }
    if (!authorized(request, env)) return failure(401, 10000, "Authentication error");
    if (url.pathname === "/health") {
      if (request.method !== "GET") return failure(405, 10405, "Method not allowed");
      // Touching the database makes "healthy" mean "ready to answer SQL".
      const outcome = await run(env, [{ sql: "SELECT 1", params: [] }], null);
      if (!outcome.ok) return failure(503, 7500, outcome.message);
      let cache;
      try {
        cache = cacheOptions(env);
      } catch (e) {
        return failure(503, 7000, e.message);
      }
      return envelope(200, {
        success: true, errors: [], messages: [],
        result: { status: "ok", account_id: env.ACCOUNT_ID, database_id: env.DATABASE_ID,
                  cache: cache ? env.CACHE : "off",
                  cache_invalidate: cache ? cache.invalidate : false,
                  cache_check: cache ? cache.check : false },
      });
    }
    const match = API.exec(url.pathname);
    if (!match) return failure(404, 7000, "No route for that URI");
    if (request.method !== "POST") return failure(405, 10405, "Method not allowed");
    const [, account, database, endpoint] = match;
    if (decodeURIComponent(account) !== env.ACCOUNT_ID) {
      return failure(403, 7403, "The given account is not valid or is not authorized to access this service");
    }
    if (decodeURIComponent(database) !== env.DATABASE_ID) {
      return failure(404, 7404, `The database ${decodeURIComponent(database)} could not be found`);
    }
    try {
      if (endpoint === "export") return await exportDump(request, env, url);
      return await query(request, env, endpoint);
    } catch (e) {
      return failure(500, 7500, String(e && e.message ? e.message : e));
    }
  },
};
