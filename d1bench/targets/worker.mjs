// The local D1's front door: a module Worker that answers Cloudflare's D1 REST
// API (`/client/v4/accounts/{account}/d1/database/{db}/query` and `/raw`) over
// the `DB` binding Miniflare gives it, so that d1bench's D1 client talks to a
// local D1 exactly as it talks to Cloudflare.
//
// Statements go through the binding's own transport (`env.DB.fetcher`, the
// channel `prepare().all()` and `batch()` use inside workerd) with
// `resultsFormat=ROWS_AND_COLUMNS`, rather than through `all()`/`raw()`:
// `raw()` drops `meta` (rows_read, rows_written, duration), and the objects
// of `all()` lose repeated column names and reorder numeric ones.  One path
// gives both endpoints the statement's columns, rows and meta, and the error
// text SQLite wrote.  The bindings TOKEN, ACCOUNT_ID and DATABASE_ID are set
// by miniflare_runner.mjs.

const API = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/(query|raw|export)\/?$/;
const DUMP = /^\/d1bench-dump\/([0-9a-f]{32})$/;

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

// Comparing the bearer token in constant time keeps its length and content
// from leaking through response timing, as an API gateway would.
function sameToken(given, expected) {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  if (a.byteLength !== b.byteLength) return false;
  return crypto.subtle.timingSafeEqual(a, b);
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

async function run(env, queries) {
  const transport = env.DB && env.DB.fetcher;
  if (!transport || typeof transport.fetch !== "function") {
    throw new Error("the D1 binding exposes no transport (Miniflare version not supported)");
  }
  const response = await transport.fetch("http://d1/query?resultsFormat=ROWS_AND_COLUMNS", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(queries),
  });
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: an exception inside the database object; its first line says what.
    return { ok: false, status: 500, message: text.split("\n")[0] || `HTTP ${response.status}` };
  }
  if (Array.isArray(data)) return { ok: true, results: data };
  return { ok: false, status: 400, message: String(data.error ?? "unknown D1 error") };
}

async function query(request, env, endpoint) {
  let body;
  try {
    body = await request.json();
  } catch (e) {
    return failure(400, 7400, `The request is malformed: ${e.message}`);
  }
  let queries;
  try {
    queries = statements(body);
  } catch (e) {
    if (e instanceof BadRequest) return failure(400, 7400, `The request is malformed: ${e.message}`);
    throw e;
  }
  const outcome = await run(env, queries);
  if (!outcome.ok) return failure(outcome.status, 7500, outcome.message);
  const result = outcome.results.map((r) => ({
    results:
      endpoint === "raw"
        ? { columns: r.results.columns, rows: r.results.rows }
        : asObjects(r.results.columns, r.results.rows),
    success: r.success,
    meta: r.meta,
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
    const dump = DUMP.exec(url.pathname);
    if (dump && request.method === "GET") {
      const text = dumps.get(dump[1]);
      if (text === undefined) return failure(404, 7404, "No such dump");
      dumps.delete(dump[1]);
      return new Response(text, { status: 200, headers: { "content-type": "application/sql" } });
    }
    if (url.pathname === "/health") {
      if (request.method !== "GET") return failure(405, 10405, "Method not allowed");
      // Touching the database makes "healthy" mean "ready to answer SQL".
      const outcome = await run(env, [{ sql: "SELECT 1", params: [] }]);
      if (!outcome.ok) return failure(503, 7500, outcome.message);
      return envelope(200, {
        success: true, errors: [], messages: [],
        result: { status: "ok", account_id: env.ACCOUNT_ID, database_id: env.DATABASE_ID },
      });
    }
    const match = API.exec(url.pathname);
    if (!match) return failure(404, 7000, "No route for that URI");
    if (request.method !== "POST") return failure(405, 10405, "Method not allowed");

    const auth = request.headers.get("authorization") ?? "";
    const bearer = /^Bearer\s+(.+)$/i.exec(auth);
    if (!bearer || !sameToken(bearer[1].trim(), env.TOKEN)) {
      return failure(401, 10000, "Authentication error");
    }
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
