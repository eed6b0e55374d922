// One service: replicas live from WatchService's SSE stream, outputs, results, terminate.
import { useEffect, useState } from "preact/hooks";
import {
  ApiError,
  download,
  fetchFile,
  getOutputs,
  getService,
  ReplicaOutputs,
  ServiceRecord,
  ServiceStatus,
  terminate,
  watch,
} from "../api";
import { bytes, date } from "../format";
import { Results, ReplicaDocument } from "./results";
import { StatusBadge } from "./services";

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

export function ServiceView(props: { id: string }) {
  const [service, setService] = useState<ServiceRecord | null>(null);
  const [status, setStatus] = useState<ServiceStatus | null>(null);
  const [outputs, setOutputs] = useState<ReplicaOutputs[]>([]);
  const [documents, setDocuments] = useState<ReplicaDocument[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    getService(props.id)
      .then(setService)
      .catch((e: Error) => setError(e.message));
    return watch(props.id, setStatus, (e: ApiError) => setError(e.message));
  }, [props.id]);

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

  const stop = async () => {
    if (!confirm(`Terminate service ${props.id}? Running replicas are stopped.`)) return;
    try {
      const answer = await terminate(props.id);
      setNotice(answer.message);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const phase = status?.phase ?? service?.phase;
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
      </dl>
      {phase !== "terminated" ? (
        <button type="button" class="danger" onClick={() => void stop()}>
          Terminate
        </button>
      ) : null}
      <h2>Replicas</h2>
      <table aria-live="polite">
        <caption class="visually-hidden">Replica states, updated live</caption>
        <thead>
          <tr>
            <th scope="col">Replica</th>
            <th scope="col">State</th>
            <th scope="col">Started</th>
            <th scope="col">Finished</th>
            <th scope="col">Detail</th>
            <th scope="col">Outputs</th>
          </tr>
        </thead>
        <tbody>
          {(status?.replicas ?? []).map((r) => {
            const files = outputs.find((o) => o.idx === (r.index ?? 0))?.files ?? [];
            return (
              <tr key={r.index ?? 0} data-replica={r.index ?? 0}>
                <td>{r.index ?? 0}</td>
                <td>
                  <StatusBadge phase={r.state} />
                </td>
                <td>{date(r.start_time)}</td>
                <td>{date(r.finish_time)}</td>
                <td>
                  {[r.reason, r.message, r.exit_code !== undefined ? `exit ${r.exit_code}` : ""]
                    .filter(Boolean)
                    .join(" · ") || "-"}
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
      <Results documents={documents} />
    </section>
  );
}
