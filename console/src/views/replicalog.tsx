// One replica's log: the whole log of the attempt picked, or followed live while it runs.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiError, followLog, replicaLog, ReplicaStatus } from "../api";

/** The first words of the line the operator ends a capped log with (replica_logs.MARKER_PREFIX). */
const MARKER_PREFIX = "[dtpoc] log truncated";
const LIVE = new Set(["running", "pending"]);

/** The attempts a replica has a log of (stored ones and the current one), oldest first. */
export function attemptsOf(replica: ReplicaStatus): number[] {
  const found = new Set((replica.logs ?? []).map((g) => g.attempt ?? 1));
  found.add(replica.attempt || 1);
  return [...found].sort((a, b) => a - b);
}

interface Shown {
  text: string;
  truncated: boolean;
  following: boolean;
  error: string | null;
}

const EMPTY: Shown = { text: "", truncated: false, following: false, error: null };

/**
 * Reads the log of `attempt`: followed (Server-Sent Events) while that attempt is the
 * replica's current one and it runs, else the whole stored or live text at once.
 */
function useLog(id: string, replica: ReplicaStatus, attempt: number): Shown {
  const [shown, setShown] = useState<Shown>(EMPTY);
  const index = replica.index ?? 0;
  const current = attempt === (replica.attempt || 1);
  const live = current && LIVE.has(replica.state ?? "pending");
  const started = replica.state !== "pending" && replica.state !== undefined;
  const storedTruncated = (replica.logs ?? []).some((g) => (g.attempt ?? 1) === attempt && g.truncated);
  useEffect(() => {
    setShown(EMPTY);
    if (current && !started) {
      setShown({ ...EMPTY, error: "No log yet: the replica has not started." });
      return;
    }
    if (!live) {
      let open = true;
      replicaLog(id, index, attempt)
        .then((text) => open && setShown({ ...EMPTY, text, truncated: text.includes(MARKER_PREFIX) }))
        .catch((e: Error) => open && setShown({ ...EMPTY, error: e.message }));
      return () => {
        open = false;
      };
    }
    setShown({ ...EMPTY, following: true });
    return followLog(
      { id, idx: index, attempt },
      {
        onPiece: (piece) =>
          setShown((before) => ({
            ...before,
            text: before.text + (piece.text ?? ""),
            truncated: before.truncated || Boolean(piece.truncated),
          })),
        onEnd: () => setShown((before) => ({ ...before, following: false })),
        onError: (e: ApiError) => setShown((before) => ({ ...before, following: false, error: e.message })),
      },
    );
    // A finished attempt's log is read again once it is stored (the replica's state changes).
  }, [id, index, attempt, live, started, replica.state]);
  return { ...shown, truncated: shown.truncated || storedTruncated };
}

/** Keeps a scrolled box at its bottom as text arrives, unless the reader scrolled up. */
function useAutoScroll(text: string) {
  const box = useRef<HTMLPreElement>(null);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    const element = box.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  }, [text]);
  const onScroll = () => {
    const element = box.current;
    if (element) pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
  };
  return { box, onScroll };
}

export function ReplicaLogPanel(props: { id: string; replica: ReplicaStatus; onClose: () => void }) {
  const { replica } = props;
  const index = replica.index ?? 0;
  const attempts = attemptsOf(replica);
  const latest = attempts[attempts.length - 1];
  const [picked, setPicked] = useState<number | null>(null);
  const attempt = picked !== null && attempts.includes(picked) ? picked : latest;
  const shown = useLog(props.id, replica, attempt);
  const { box, onScroll } = useAutoScroll(shown.text);
  const heading = `Log of replica ${index}${replica.run && replica.run !== props.id ? ` (run ${replica.run})` : ""}`;
  return (
    <section class="replica-log" aria-labelledby="log-title" data-testid="replica-log" data-replica={index}>
      <h2 id="log-title">{heading}</h2>
      <div class="log-bar">
        <label class="field inline">
          Attempt
          <select
            value={String(attempt)}
            onChange={(e) => setPicked(Number((e.target as HTMLSelectElement).value))}
          >
            {attempts.map((a) => (
              <option key={a} value={String(a)}>
                {a}
                {a === latest ? " (latest)" : ""}
              </option>
            ))}
          </select>
        </label>
        <span class="hint" data-testid="log-state" aria-live="polite">
          {shown.following ? "following live…" : shown.error ? "" : "whole log"}
        </span>
        <button type="button" class="link" onClick={props.onClose}>
          Close the log
        </button>
      </div>
      {shown.truncated ? (
        <p class="warning" data-testid="log-truncated">
          This log reached the platform's size cap: what the replica printed after the marker line
          was discarded.
        </p>
      ) : null}
      {shown.error ? (
        <p role="alert" class="error">
          {shown.error}
        </p>
      ) : null}
      <pre class="log" ref={box} onScroll={onScroll} tabIndex={0} aria-label={heading}>
        {shown.text}
      </pre>
    </section>
  );
}
