// Any JSON as a readable tree: objects and arrays fold (native <details>, keyboard-ready).

function Leaf(props: { value: unknown }) {
  const v = props.value;
  if (v === null) return <span class="json-null">null</span>;
  if (typeof v === "string") return <span class="json-string">“{v}”</span>;
  if (typeof v === "number") return <span class="json-number">{String(v)}</span>;
  if (typeof v === "boolean") return <span class="json-bool">{String(v)}</span>;
  return <span>{String(v)}</span>;
}

function Node(props: { name: string; value: unknown; depth: number }) {
  const v = props.value;
  if (v === null || typeof v !== "object") {
    return (
      <li>
        <span class="json-key">{props.name}</span>: <Leaf value={v} />
      </li>
    );
  }
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
  const size = Array.isArray(v) ? `[${entries.length}]` : `{${entries.length}}`;
  return (
    <li>
      <details open={props.depth < 1}>
        <summary>
          <span class="json-key">{props.name}</span> <span class="json-size">{size}</span>
        </summary>
        <ul>
          {entries.map(([key, child]) => (
            <Node key={key} name={key} value={child} depth={props.depth + 1} />
          ))}
        </ul>
      </details>
    </li>
  );
}

export function JsonTree(props: { value: unknown; label: string }) {
  return (
    <ul class="json-tree" aria-label={`Contents of ${props.label}`}>
      <Node name="(document)" value={props.value} depth={0} />
    </ul>
  );
}
