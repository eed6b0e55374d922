// Plain SVG charts (no library, nothing fetched): horizontal bars of the mean across
// replicas, a whisker from the lowest to the highest replica, a dot per replica; and
// lines (one per replica). Each chart has its numbers in a table for screen readers.

export const COLOURS = ["#0b5394", "#b45f06", "#38761d", "#741b47", "#5b5b5b", "#134f5c"];

export interface BarRow {
  group: string; // e.g. "cancer"
  series: string; // e.g. "p95"
  values: number[]; // one per replica
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function Legend(props: { names: string[] }) {
  return (
    <ul class="legend" aria-hidden="true">
      {props.names.map((name, n) => (
        <li key={name}>
          <svg width="12" height="12" viewBox="0 0 12 12">
            <rect width="12" height="12" fill={COLOURS[n % COLOURS.length]} />
          </svg>
          {name}
        </li>
      ))}
    </ul>
  );
}

// A chart's numbers as a table, for screen readers and for copying: a column a head, a row each.
function Numbers(props: { head: string[]; rows: { key: string; label: string; cells: string[] }[] }) {
  return (
    <details>
      <summary>Numbers</summary>
      <table>
        <thead>
          <tr>
            <th scope="col">{"\u00a0"}</th>
            {props.head.map((name, i) => (
              <th scope="col" key={i}>
                {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={row.key}>
              <th scope="row">{row.label}</th>
              {row.cells.map((cell, i) => (
                <td key={i}>{cell}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function BarChart(props: {
  id: string;
  title: string;
  rows: BarRow[];
  format: (v: number) => string;
  max?: number;
  replicas: string[];
}) {
  const groups = [...new Set(props.rows.map((r) => r.group))];
  const series = [...new Set(props.rows.map((r) => r.series))];
  const all = props.rows.flatMap((r) => r.values);
  const max = props.max ?? niceMax(Math.max(0, ...all));
  const labelWidth = 160;
  const width = 640;
  const plot = width - labelWidth - 70;
  const bar = 14;
  const groupHeight = series.length * (bar + 3) + 12;
  const height = groups.length * groupHeight + 30;
  const x = (v: number) => labelWidth + (Math.min(v, max) / max) * plot;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => t * max);
  const spread = props.replicas.length > 1;
  return (
    <figure class="chart" data-chart={props.id}>
      <figcaption id={`${props.id}-title`}>{props.title}</figcaption>
      {series.length > 1 ? <Legend names={series} /> : null}
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-labelledby={`${props.id}-title`}
        preserveAspectRatio="xMinYMin meet"
      >
        {ticks.map((t) => (
          <g key={t}>
            <line x1={x(t)} x2={x(t)} y1={0} y2={height - 22} stroke="#d0d0d0" />
            <text x={x(t)} y={height - 8} text-anchor="middle" font-size="11" fill="#333">
              {props.format(t)}
            </text>
          </g>
        ))}
        {groups.map((group, g) => {
          const top = g * groupHeight + 4;
          return (
            <g key={group}>
              <text
                x={labelWidth - 8}
                y={top + (series.length * (bar + 3)) / 2 + 4}
                text-anchor="end"
                font-size="12"
                fill="#111"
              >
                {group}
              </text>
              {series.map((name, s) => {
                const row = props.rows.find((r) => r.group === group && r.series === name);
                if (!row || !row.values.length) return null;
                const y = top + s * (bar + 3);
                const m = mean(row.values);
                const lo = Math.min(...row.values);
                const hi = Math.max(...row.values);
                const colour = COLOURS[s % COLOURS.length];
                return (
                  <g key={name}>
                    <rect x={labelWidth} y={y} width={x(m) - labelWidth} height={bar} fill={colour} opacity={0.85}>
                      <title>
                        {group} {name}: mean {props.format(m)}
                        {spread ? `, replicas ${props.format(lo)} – ${props.format(hi)}` : ""}
                      </title>
                    </rect>
                    {spread ? (
                      <>
                        <line x1={x(lo)} x2={x(hi)} y1={y + bar / 2} y2={y + bar / 2} stroke="#000" stroke-width="1.5" />
                        <line x1={x(lo)} x2={x(lo)} y1={y + 2} y2={y + bar - 2} stroke="#000" stroke-width="1.5" />
                        <line x1={x(hi)} x2={x(hi)} y1={y + 2} y2={y + bar - 2} stroke="#000" stroke-width="1.5" />
                        {row.values.map((v, r) => (
                          <circle key={r} cx={x(v)} cy={y + bar / 2} r={2.5} fill="#fff" stroke="#000" />
                        ))}
                      </>
                    ) : null}
                    <text x={x(spread ? hi : m) + 6} y={y + bar - 3} font-size="11" fill="#111">
                      {props.format(m)}
                    </text>
                  </g>
                );
              })}
            </g>
          );
        })}
      </svg>
      <Numbers
        head={["series", ...props.replicas, ...(spread ? ["mean"] : [])]}
        rows={props.rows.map((row) => ({
          key: `${row.group}/${row.series}`,
          label: row.group,
          cells: [row.series, ...row.values.map((v) => props.format(v)), ...(spread ? [props.format(mean(row.values))] : [])],
        }))}
      />
    </figure>
  );
}

export function LineChart(props: {
  id: string;
  title: string;
  lines: { name: string; values: number[] }[];
  xLabel: (i: number) => string;
  format: (v: number) => string;
}) {
  const width = 640;
  const height = 220;
  const left = 50;
  const bottom = 30;
  const points = Math.max(1, ...props.lines.map((l) => l.values.length));
  const max = niceMax(Math.max(0, ...props.lines.flatMap((l) => l.values)));
  const x = (i: number) => left + (points > 1 ? (i / (points - 1)) * (width - left - 20) : 0);
  const y = (v: number) => 10 + (1 - v / max) * (height - bottom - 10);
  return (
    <figure class="chart" data-chart={props.id}>
      <figcaption id={`${props.id}-title`}>{props.title}</figcaption>
      <Legend names={props.lines.map((l) => l.name)} />
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-labelledby={`${props.id}-title`}>
        {[0, 0.5, 1].map((t) => (
          <g key={t}>
            <line x1={left} x2={width - 20} y1={y(t * max)} y2={y(t * max)} stroke="#d0d0d0" />
            <text x={left - 6} y={y(t * max) + 4} text-anchor="end" font-size="11" fill="#333">
              {props.format(t * max)}
            </text>
          </g>
        ))}
        {Array.from({ length: points }, (_, i) => (
          <text key={i} x={x(i)} y={height - 10} text-anchor="middle" font-size="11" fill="#333">
            {props.xLabel(i)}
          </text>
        ))}
        {props.lines.map((line, n) => (
          <polyline
            key={line.name}
            fill="none"
            stroke={COLOURS[n % COLOURS.length]}
            stroke-width="2"
            points={line.values.map((v, i) => `${x(i)},${y(v)}`).join(" ")}
          />
        ))}
      </svg>
      <Numbers
        head={Array.from({ length: points }, (_, i) => props.xLabel(i))}
        rows={props.lines.map((line) => ({ key: line.name, label: line.name, cells: line.values.map((v) => props.format(v)) }))}
      />
    </figure>
  );
}
