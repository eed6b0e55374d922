// The public REST API, exactly as any client uses it: same paths, same bearer
// header, same error body. Nothing here knows about gRPC or the backends.

export const PREFIX = "/api/orchestrator/v1alpha1";
const TOKEN_KEY = "dtpoc.token";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** One field the server named in a refusal (google.rpc.BadRequest, or `field: text`). */
export interface FieldViolation {
  field: string;
  description: string;
}

/** One precondition the server named (google.rpc.PreconditionFailure). */
export interface Precondition {
  type: string;
  subject: string;
  description: string;
}

/** The gateway's error body, kept whole so views can show its parts in words. */
export class ApiError extends Error {
  readonly status: number;
  readonly kind: string;
  readonly fields: FieldViolation[];
  readonly preconditions: Precondition[];

  constructor(status: number, body: unknown) {
    const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const message =
      typeof b.message === "string" && b.message
        ? b.message
        : typeof b.detail === "string"
          ? b.detail
          : `the server answered ${status}`;
    super(message);
    this.status = status;
    this.kind = typeof b.status === "string" ? b.status : "";
    const details = Array.isArray(b.details) ? (b.details as Record<string, unknown>[]) : [];
    this.fields = [];
    this.preconditions = [];
    for (const detail of details) {
      const type = String(detail["@type"] ?? "");
      if (type.endsWith("google.rpc.BadRequest")) {
        const list = (detail.field_violations ?? detail.fieldViolations) as unknown;
        for (const v of Array.isArray(list) ? list : []) {
          this.fields.push({ field: String(v.field ?? ""), description: String(v.description ?? "") });
        }
      } else if (type.endsWith("google.rpc.PreconditionFailure")) {
        const list = detail.violations as unknown;
        for (const v of Array.isArray(list) ? list : []) {
          this.preconditions.push({
            type: String(v.type ?? ""),
            subject: String(v.subject ?? ""),
            description: String(v.description ?? ""),
          });
        }
      }
    }
    if (status === 400 && this.fields.length === 0) {
      // The orchestrator's words start with the field they concern: "ana.schedule: ...".
      // "a: x; b: y" names two fields; "a: x; give five" is one message with a semicolon.
      for (const part of message.split(/; (?=[a-z_][a-z0-9_.]*(?:\[[^\]]*\])?: )/i)) {
        const found = /^([a-z_][a-z0-9_.]*(?:\[[^\]]*\])?): (.+)$/i.exec(part);
        if (found) this.fields.push({ field: found[1], description: found[2] });
      }
    }
  }
}

/** Listeners told when the server refuses the token (the app shows the sign-in). */
const unauthorised = new Set<(message: string) => void>();
export function onUnauthorised(listener: (message: string) => void): () => void {
  unauthorised.add(listener);
  return () => unauthorised.delete(listener);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function fail(response: Response): Promise<never> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = new ApiError(response.status, body);
  if (response.status === 401) unauthorised.forEach((listener) => listener(error.message));
  throw error;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: headers() };
  if (body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  const response = await fetch(PREFIX + path, init);
  if (!response.ok) return fail(response);
  return (await response.json()) as T;
}

/** A tool of the deployment the console links to (Grafana, Node-RED), from the gateway's settings. */
export interface ToolLink {
  id: string;
  title: string;
  url: string;
}

/**
 * The deployment's other tools (`GET /console/links.json`, behind the token like the API).
 * Not signed in, refused or unreachable: no links, and no sign-in prompt of its own.
 */
export async function toolLinks(): Promise<ToolLink[]> {
  try {
    const response = await fetch("/console/links.json", { headers: headers() });
    if (!response.ok) return [];
    const body = (await response.json()) as { links?: ToolLink[] };
    return body.links ?? [];
  } catch {
    return [];
  }
}

// --- records ---------------------------------------------------------------------------------

export interface FileRecord {
  file_id: string;
  filename: string;
  length: number;
  uploadDate: string;
  metadata?: Record<string, unknown>;
  content_type?: string;
}

export interface ReplicaStatus {
  index?: number;
  state?: string;
  reason?: string;
  message?: string;
  start_time?: string;
  finish_time?: string;
  exit_code?: number;
  pod_name?: string;
  output_file_ids?: string[];
  outputs_collected?: boolean;
  /** The run (a scheduled service's Job); the service id for ondemand services. */
  run?: string;
  /** 1 for the first run of this replica, one more per retry (0 or absent: 1). */
  attempt?: number;
  /** The stored log of each ended attempt, oldest first. */
  logs?: ReplicaLog[];
}

export interface ReplicaLog {
  attempt?: number;
  file_id?: string;
  truncated?: boolean;
}

export interface RunStatus {
  name?: string;
  schedule_time?: string;
  state?: string;
}

export interface ServiceStatus {
  active_runs?: number;
  succeeded_runs?: number;
  failed_runs?: number;
  total_runs?: number;
  status?: string;
  phase?: string;
  message?: string;
  job_type?: string;
  output_files?: string[];
  replicas?: ReplicaStatus[];
  updated_at?: string;
  runs?: RunStatus[];
  /** The operator has applied a suspension: no new run starts. */
  suspended?: boolean;
}

export interface ServiceRecord extends ServiceStatus {
  id: string;
  image: string;
  version: string;
  description?: string;
  reps?: number;
  mount_files?: Record<string, string>;
  created_at?: number;
  terminated_at?: number;
  schedule?: string;
  port?: number;
  env?: Record<string, string>;
  command?: string[];
  resubmitted_from?: string;
  resubmissions?: string[];
  /** A suspension was asked for (the status's `suspended` says once it is applied). */
  suspended?: boolean;
}

/** RetryService's answer: which replicas run again, as which attempt. */
export interface RetryAnswer {
  message?: string;
  indexes?: number[];
  attempts?: number[];
}

/** One piece of a replica's log (GetReplicaLogResponse). */
export interface LogPiece {
  text?: string;
  attempt?: number;
  truncated?: boolean;
}

export interface OutputFile {
  file_id: string;
  path: string;
  length?: number;
  replica_index?: number;
}

export interface ReplicaOutputs {
  idx?: number;
  state?: string;
  files?: OutputFile[];
}

export interface LaunchBody {
  image: string;
  version: string;
  description: string;
  port?: number;
  env: Record<string, string>;
  mount_files: Record<string, string>;
  ana: { job_type: string; reps?: number; schedule?: string };
  command?: string[];
}

// --- calls -----------------------------------------------------------------------------------

export const listFiles = (skip: number, limit: number) =>
  request<FileRecord[]>("GET", `/files?skip=${skip}&limit=${limit}`);
export const deleteFile = (id: string) =>
  request<{ message: string }>("DELETE", `/files/${encodeURIComponent(id)}`);
export const listServices = (skip: number, limit: number) =>
  request<ServiceRecord[]>("GET", `/service/?skip=${skip}&limit=${limit}`);
export const getService = (id: string) =>
  request<ServiceRecord>("GET", `/service/${encodeURIComponent(id)}`);
export const getOutputs = (id: string) =>
  request<{ replicas?: ReplicaOutputs[] }>("GET", `/service/${encodeURIComponent(id)}/outputs`);
export const launch = (body: LaunchBody) => request<{ id: string }>("POST", "/service/launch", body);
export const terminate = (id: string) =>
  request<{ message: string }>("DELETE", `/service/${encodeURIComponent(id)}/terminate`);
const act = <T>(id: string, action: string) =>
  request<T>("POST", `/service/${encodeURIComponent(id)}/${action}`, {});
export const retry = (id: string) => act<RetryAnswer>(id, "retry");
export const resubmit = (id: string) => act<{ id: string }>(id, "resubmit");
export const suspend = (id: string) =>
  act<{ message?: string; service?: ServiceRecord }>(id, "suspend");
export const resume = (id: string) =>
  act<{ message?: string; service?: ServiceRecord }>(id, "resume");

function logPath(id: string, idx: number, attempt: number | null, follow: boolean): string {
  const query = new URLSearchParams();
  if (attempt !== null) query.set("attempt", String(attempt));
  if (follow) query.set("follow", "true");
  const tail = query.toString();
  return `${PREFIX}/service/${encodeURIComponent(id)}/logs/${idx}${tail ? `?${tail}` : ""}`;
}

/** The whole log of one attempt of a replica (the latest when `attempt` is null), as text. */
export async function replicaLog(id: string, idx: number, attempt: number | null): Promise<string> {
  const response = await fetch(logPath(id, idx, attempt, false), { headers: headers() });
  if (!response.ok) return fail(response);
  return response.text();
}

/**
 * Follow a replica's log (`follow=true`, Server-Sent Events read with fetch for the
 * bearer header): each piece as it is printed, then `onEnd` when the replica ended
 * (the server closes the stream). `stop` cancels it.
 */
export function followLog(
  target: { id: string; idx: number; attempt: number | null },
  handlers: { onPiece: (piece: LogPiece) => void; onEnd: () => void; onError: (e: ApiError) => void },
): () => void {
  const controller = new AbortController();
  const run = async () => {
    try {
      const response = await fetch(logPath(target.id, target.idx, target.attempt, true), {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
      });
      if (!response.ok || !response.body) await fail(response);
      await readEvents(response.body as ReadableStream<Uint8Array>, handlers.onPiece, handlers.onError);
      handlers.onEnd();
    } catch (error) {
      if (controller.signal.aborted) return;
      handlers.onError(
        error instanceof ApiError
          ? error
          : new ApiError(0, { message: "the log stream was interrupted (network)" }),
      );
    }
  };
  void run();
  return () => controller.abort();
}

/** A stored file's bytes (with the bearer header, which a plain link cannot send). */
export async function fetchFile(id: string): Promise<Blob> {
  const response = await fetch(`${PREFIX}/files/${encodeURIComponent(id)}`, { headers: headers() });
  if (!response.ok) return fail(response);
  return response.blob();
}

/** Save a stored file under its name through an object URL. */
export async function download(id: string, filename: string): Promise<void> {
  const blob = await fetchFile(id);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename || id;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Upload one file with XHR, the only browser API that reports upload progress. */
export function upload(
  file: File,
  onProgress: (loaded: number, total: number) => void,
): Promise<{ file_id: string; filename: string; message?: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${PREFIX}/files/upload`);
    const token = getToken();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.upload.onload = (event) => onProgress(event.loaded, event.total || event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.response);
        return;
      }
      const error = new ApiError(xhr.status, xhr.response);
      if (xhr.status === 401) unauthorised.forEach((listener) => listener(error.message));
      reject(error);
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload was interrupted (network)" }));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/**
 * Follow WatchService's Server-Sent Events. EventSource cannot send a bearer
 * header, so the stream is read with fetch; it reconnects after an end or a
 * network error until `stop` is called.
 */
export function watch(
  id: string,
  onStatus: (status: ServiceStatus) => void,
  onError: (error: ApiError) => void,
): () => void {
  const controller = new AbortController();
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const response = await fetch(`${PREFIX}/service/${encodeURIComponent(id)}/watch`, {
          headers: headers({ Accept: "text/event-stream" }),
          signal: controller.signal,
        });
        if (!response.ok || !response.body) {
          await fail(response);
          return;
        }
        await readEvents(
          response.body,
          (parsed: { status?: ServiceStatus }) =>
            onStatus((parsed.status ?? parsed) as ServiceStatus),
          onError,
        );
      } catch (error) {
        if (stopped) return;
        if (error instanceof ApiError) {
          onError(error);
          if (error.status >= 400 && error.status < 500) return;
        }
      }
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  void run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

/** Read Server-Sent Events: each `data` as JSON to `onMessage`, `event: error` to `onError`. */
async function readEvents<T>(
  body: ReadableStream<Uint8Array>,
  onMessage: (message: T) => void,
  onError: (error: ApiError) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (!data.length) continue;
      const parsed = JSON.parse(data.join("\n"));
      if (event === "error") onError(new ApiError(Number(parsed.code) || 500, parsed));
      else onMessage(parsed as T);
    }
  }
}
