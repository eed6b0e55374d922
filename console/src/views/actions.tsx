// A service's daily tools: retry (ondemand, or a scheduled service's latest finished run),
// resubmit, suspend / resume, terminate.
//
// Each button is disabled for exactly the states the server refuses (the rules of
// services/orchestrator actions.py), with the reason beside it; should the server
// refuse anyway (its state moved on), its 400 message is shown as it was sent.
import { useState } from "preact/hooks";
import { resubmit, resume, retry, ServiceRecord, ServiceStatus, suspend, terminate } from "../api";
import { go } from "../format";

const FINISHED = new Set(["succeeded", "failed"]);
const RETRIED = new Set(["ondemand", "scheduled"]);

/** The run a retry is for: a scheduled service's newest (runs are newest first); "" ondemand. */
function retriedRun(service: ServiceRecord, status: ServiceStatus | null): string {
  return service.job_type === "scheduled" ? (status?.runs?.[0]?.name ?? "") : "";
}

/** Why the server would refuse a retry now, or null when it would run one. */
export function retryRefusal(service: ServiceRecord, status: ServiceStatus | null): string | null {
  const phase = status?.phase ?? service.phase ?? "pending";
  if (phase === "terminated" || service.terminated_at !== undefined)
    return "A terminated service is not retried: resubmit it to run it again.";
  if (!RETRIED.has(service.job_type ?? ""))
    return `A ${service.job_type} service's replica is restarted in place, not retried.`;
  if (service.job_type === "scheduled") {
    const newest = status?.runs?.[0];
    if (newest && !FINISHED.has(newest.state ?? ""))
      return `Run ${newest.name} is still ${newest.state || "running"}: retry once it has finished.`;
    return null;
  }
  if (!FINISHED.has(phase)) return `The service is still ${phase}: retry once it has finished.`;
  return null;
}

/**
 * True when a replica failed (of a scheduled service: in its newest run, the one a
 * retry is for): the only case Retry is offered in.
 */
export function somethingFailed(service: ServiceRecord, status: ServiceStatus | null): boolean {
  const run = retriedRun(service, status);
  return (status?.replicas ?? []).some((r) => r.state === "failed" && (!run || r.run === run));
}

export function ServiceActions(props: {
  service: ServiceRecord;
  status: ServiceStatus | null;
  onChanged: (service: ServiceRecord | null, notice: string) => void;
}) {
  const { service, status } = props;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const phase = status?.phase ?? service.phase;
  const terminated = phase === "terminated" || service.terminated_at !== undefined;
  const scheduled = service.job_type === "scheduled";

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const doRetry = () =>
    run(async () => {
      const answer = await retry(service.id);
      const which = (answer.indexes ?? [])
        .map((index, n) => `replica ${index} as attempt ${(answer.attempts ?? [])[n]}`)
        .join(", ");
      props.onChanged(null, answer.message || `Running again: ${which}`);
    });
  const doResubmit = () =>
    run(async () => {
      const answer = await resubmit(service.id);
      go(`/services/${answer.id}`);
    });
  const doSuspend = (on: boolean) =>
    run(async () => {
      if (on && !confirm(`Suspend service ${service.id}? It starts no new run until resumed.`)) return;
      const answer = on ? await suspend(service.id) : await resume(service.id);
      props.onChanged(answer.service ?? null, answer.message ?? (on ? "Suspended" : "Resumed"));
    });
  const doTerminate = () =>
    run(async () => {
      if (!confirm(`Terminate service ${service.id}? Running replicas are stopped.`)) return;
      const answer = await terminate(service.id);
      props.onChanged(null, answer.message);
    });

  const refusal = retryRefusal(service, status);
  return (
    <div class="service-actions" role="group" aria-label="Service actions">
      {somethingFailed(service, status) ? (
        <span class="action">
          <button
            type="button"
            disabled={busy || refusal !== null}
            aria-describedby={refusal ? "retry-why" : undefined}
            onClick={() => void doRetry()}
          >
            Retry failed replicas
          </button>
          {refusal ? (
            <span id="retry-why" class="hint">
              {refusal}
            </span>
          ) : null}
        </span>
      ) : null}
      <button type="button" disabled={busy} onClick={() => void doResubmit()}>
        Resubmit
      </button>
      {scheduled ? (
        <span class="action">
          <button
            type="button"
            disabled={busy || terminated}
            aria-describedby={terminated ? "suspend-why" : undefined}
            onClick={() => void doSuspend(!service.suspended)}
          >
            {service.suspended ? "Resume" : "Suspend"}
          </button>
          {terminated ? (
            <span id="suspend-why" class="hint">
              A terminated service has no runs to hold back or let go.
            </span>
          ) : null}
        </span>
      ) : null}
      {!terminated ? (
        <button type="button" class="danger" disabled={busy} onClick={() => void doTerminate()}>
          Terminate
        </button>
      ) : null}
      {error ? (
        <p role="alert" class="error" data-testid="action-error">
          {error}
        </p>
      ) : null}
    </div>
  );
}
