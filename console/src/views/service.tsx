// One service: replicas live from WatchService's SSE stream, their logs, outputs, results,
// and the actions (retry, resubmit, suspend / resume, terminate).
import { useEffect, useState } from "preact/hooks";
import {
  ApiError,
  download,
  fetchFile,
  getOutputs,
  getService,
  ReplicaOutputs,
  ServiceRecord,
  ReplicaStatus,
  RunStatus,
  ServiceStatus,
  watch,
} from "../api";
import { bytes, date } from "../format";
import { ServiceActions } from "./actions";
import { ReplicaLogPanel } from "./replicalog";
import { Results, ReplicaDocument } from "./results";
import { StatusBadge } from "./services";
import { TableHead } from "./table";

const FINAL = new Set(["succeeded", "failed", "terminated"]);

async function readDocuments(outputs: ReplicaOutputs[]): Promise<ReplicaDocument[]> {
  const found: ReplicaDocument[] = [];
  for (const replica of outputs) {
    for (const file of replica.files ?? []) {
      if (!file.path.toLowerCase().endsWith(".json")) continue;
      const text = await (await fetchFile(file.file_id)).text();
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue;
      }
      found.push({ replica: replica.idx ?? file.replica_index ?? 0, file, value });
    }
  }
  return found;
}

/** A replica entry's identity: a scheduled service has one per run and index. */
function replicaKey(r: ReplicaStatus): string {
  return `${r.run ?? ""}/${r.index ?? 0}`;
}

/**
 * The entries whose log `GET .../logs/{idx}` answers: per index, the one of the newest
 * run (a scheduled service's runs are newest first in the status; ondemand: the one).
 */
function newestByIndex(replicas: ReplicaStatus[], runs: RunStatus[]): Set<string> {
  const order = new Map(runs.map((run, position) => [run.name ?? "", position]));
  const best = new Map<number, ReplicaStatus>();
  for (const r of replicas) {
    const index = r.index ?? 0;
    const held = best.get(index);
    const rank = order.get(r.run ?? "") ?? Number.MAX_SAFE_INTEGER;
    if (!held || rank < (order.get(held.run ?? "") ?? Number.MAX_SAFE_INTEGER)) best.set(index, r);
  }
  return new Set([...best.values()].map(replicaKey));
}

/** Whether a scheduled service starts runs: asked for (the record) and applied (the status). */
function suspension(service: ServiceRecord, status: ServiceStatus | null): string {
  const applied = Boolean(status?.suspended);
  if (service.suspended) return applied ? "suspended" : "suspending…";
  return applied ? "resuming…" : "on schedule";
}

export function ServiceView(props: { id: string }) {
  const [service, setService] = useState<ServiceRecord | null>(null);
  const [status, setStatus] = useState<ServiceStatus | null>(null);
  const [outputs, setOutputs] = useState<ReplicaOutputs[]>([]);
  const [documents, setDocuments] = useState<ReplicaDocument[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [logOf, setLogOf] = useState<string | null>(null); // replicaKey of the log shown
  const [reread, setReread] = useState(0);

  useEffect(() => {
    getService(props.id)
      .then(setService)
      .catch((e: Error) => setError(e.message));
  }, [props.id, reread]);
  useEffect(() => watch(props.id, setStatus, (e: ApiError) => setError(e.message)), [props.id]);

  const collected = (status?.replicas ?? []).filter((r) => r.outputs_collected).length;
  useEffect(() => {
    getOutputs(props.id)
      .then(async (answer) => {
        const replicas = answer.replicas ?? [];
        setOutputs(replicas);
        setDocuments(await readDocuments(replicas));
      })
      .catch((e: Error) => setError(e.message));
  }, [props.id, collected]);

  const changed = (record: ServiceRecord | null, message: string) => {
    setNotice(message);
    if (record) setService(record);
    else setReread((n) => n + 1);
  };

  const phase = status?.phase ?? service?.phase;
  const replicas = status?.replicas ?? [];
  const logReplica = replicas.find((r) => replicaKey(r) === logOf) ?? null;
  const newest = newestByIndex(replicas, status?.runs ?? []);
  return (
    <section aria-labelledby="service-title">
      <h1 id="service-title" tabIndex={-1}>
        {service?.description || "Service"} <span class="id">{props.id}</span>
      </h1>
      {error ? (
        <p role="alert" class="error">
          {error}
        </p>
      ) : null}
      <div aria-live="polite" class="notice">
        {notice}
      </div>
      <dl class="facts">
        <div>
          <dt>Status</dt>
          <dd data-testid="service-phase">
            <StatusBadge phase={phase} status={status?.status} />
          </dd>
        </div>
        <div>
          <dt>Summary</dt>
          <dd>{status?.message || "-"}</dd>
        </div>
        <div>
          <dt>Image</dt>
          <dd>{service ? `${service.image}:${service.version}` : "-"}</dd>
        </div>
        <div>
          <dt>Type</dt>
          <dd>
            {service?.job_type} {service?.schedule ? `(${service.schedule})` : ""}
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{date(service?.created_at)}</dd>
        </div>
        {service?.job_type === "scheduled" ? (
          <div>
            <dt>Runs</dt>
            <dd data-testid="suspension">{suspension(service, status)}</dd>
          </div>
        ) : null}
        {service?.resubmitted_from ? (
          <div>
            <dt>Resubmitted from</dt>
            <dd data-testid="resubmitted-from">
              <a href={`#/services/${service.resubmitted_from}`}>{service.resubmitted_from}</a>
            </dd>
          </div>
        ) : null}
        {service?.resubmissions?.length ? (
          <div>
            <dt>Resubmissions</dt>
            <dd data-testid="resubmissions">
              {service.resubmissions.map((other) => (
                <a key={other} class="id-link" href={`#/services/${other}`}>
                  {other}
                </a>
              ))}
            </dd>
          </div>
        ) : null}
      </dl>
      {service ? <ServiceActions service={service} status={status} onChanged={changed} /> : null}
      <h2>Replicas</h2>
      <table aria-live="polite">
        <TableHead
          caption="Replica states, updated live"
          columns={["Replica", "State", "Attempt", "Started", "Finished", "Detail", "Log", "Outputs"]}
        />
        <tbody>
          {replicas.map((r) => {
            const files = outputs.find((o) => o.idx === (r.index ?? 0))?.files ?? [];
            return (
              <tr key={replicaKey(r)} data-replica={r.index ?? 0} data-run={r.run ?? ""}>
                <td>{r.index ?? 0}</td>
                <td>
                  <StatusBadge phase={r.state} />
                </td>
                <td data-testid="attempt">{r.attempt || 1}</td>
                <td>{date(r.start_time)}</td>
                <td>{date(r.finish_time)}</td>
                <td>
                  {[r.reason, r.message, r.exit_code !== undefined ? `exit ${r.exit_code}` : ""]
                    .filter(Boolean)
                    .join(" · ") || "-"}
                </td>
                <td>
                  {newest.has(replicaKey(r)) ? (
                    <button
                      type="button"
                      class="link"
                      aria-pressed={logOf === replicaKey(r)}
                      onClick={() => setLogOf(logOf === replicaKey(r) ? null : replicaKey(r))}
                    >
                      Log of replica {r.index ?? 0}
                    </button>
                  ) : (
                    <span class="hint">an earlier run</span>
                  )}
                </td>
                <td>
                  {files.length
                    ? files.map((f) => (
                        <button
                          type="button"
                          class="link"
                          key={f.file_id}
                          onClick={() => void download(f.file_id, f.path.split("/").pop() ?? f.path)}
                        >
                          {f.path} ({bytes(f.length)})
                        </button>
                      ))
                    : r.outputs_collected
                      ? "none"
                      : FINAL.has(r.state ?? "")
                        ? "collecting…"
                        : "-"}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {logReplica ? (
        <ReplicaLogPanel id={props.id} replica={logReplica} onClose={() => setLogOf(null)} />
      ) : null}
      <Results documents={documents} />
    </section>
  );
}
