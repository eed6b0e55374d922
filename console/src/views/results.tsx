// Results as pictures: the histolab KPI document (schema dtpoc.histolab.kpis/v1) as
// charts across replicas and per replica; any other JSON as a tree with a download link.
import { useState } from "preact/hooks";
import { download, OutputFile } from "../api";
import { BarChart, BarRow, LineChart } from "../charts";
import { bytes, percent } from "../format";
import { JsonTree } from "./jsontree";

export interface ReplicaDocument {
  replica: number;
  file: OutputFile;
  value: unknown;
}

export const KPI_SCHEMA = "dtpoc.histolab.kpis/v1";
const PERCENTILES = ["p50", "p90", "p95"];
const PRIORITIES = ["cancer", "urgent", "routine", "overall"];

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const num = (v: unknown): number => (typeof v === "number" ? v : Number.NaN);
const hours = (v: number) => `${v.toFixed(v >= 10 ? 0 : 1)} h`;
const count = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

function turnaround(docs: Json[]): BarRow[] {
  const rows: BarRow[] = [];
  for (const group of PRIORITIES) {
    for (const p of PERCENTILES) {
      const values = docs.map((d) => {
        const t = obj(d.turnaround_hours);
        const g = group === "overall" ? obj(t.overall) : obj(obj(t.by_priority)[group]);
        return num(g[p]);
      });
      if (values.every((v) => !Number.isNaN(v))) rows.push({ group, series: p, values });
    }
  }
  return rows;
}

function utilisation(docs: Json[]): BarRow[] {
  const names = [...new Set(docs.flatMap((d) => Object.keys(obj(obj(d.utilisation).resources))))].sort();
  return names.map((name) => ({
    group: name.replace(/_/g, " "),
    series: "utilisation",
    values: docs.map((d) => num(obj(obj(obj(d.utilisation).resources)[name]).utilisation)).filter((v) => !Number.isNaN(v)),
  }));
}

function wip(docs: Json[]): BarRow[] {
  return ["mean", "max", "at_end"].map((key) => ({
    group: key.replace("_", " "),
    series: "specimens",
    values: docs.map((d) => num(obj(d.wip)[key])).filter((v) => !Number.isNaN(v)),
  }));
}

function KpiCharts(props: { id: string; docs: ReplicaDocument[]; heading: string }) {
  const docs = props.docs.map((d) => obj(d.value));
  const replicas = props.docs.map((d) => `replica ${d.replica}`);
  const throughput = props.docs.map((d) => ({
    name: `replica ${d.replica}`,
    values: (obj(obj(d.value).throughput).per_day as number[] | undefined) ?? [],
  }));
  return (
    <div class="charts" data-testid={`charts-${props.id}`}>
      <h3>{props.heading}</h3>
      <BarChart
        id={`${props.id}-turnaround`}
        title={`Turnaround time percentiles by priority (hours)${replicas.length > 1 ? ": mean, with the range between replicas" : ""}`}
        rows={turnaround(docs)}
        format={hours}
        replicas={replicas}
      />
      <BarChart
        id={`${props.id}-utilisation`}
        title="Utilisation per resource"
        rows={utilisation(docs)}
        format={percent}
        max={1}
        replicas={replicas}
      />
      <BarChart
        id={`${props.id}-wip`}
        title="Work in progress (specimens in the lab)"
        rows={wip(docs)}
        format={count}
        replicas={replicas}
      />
      <LineChart
        id={`${props.id}-throughput`}
        title="Specimens completed per day"
        lines={throughput}
        xLabel={(i) => `day ${i + 1}`}
        format={count}
      />
    </div>
  );
}

function Other(props: { doc: ReplicaDocument }) {
  const name = props.doc.file.path.split("/").pop() ?? props.doc.file.path;
  return (
    <div class="other-output">
      <h3>
        Replica {props.doc.replica}: {props.doc.file.path}{" "}
        <button type="button" class="link" onClick={() => void download(props.doc.file.file_id, name)}>
          Download ({bytes(props.doc.file.length)})
        </button>
      </h3>
      <JsonTree value={props.doc.value} label={props.doc.file.path} />
    </div>
  );
}

export function Results(props: { documents: ReplicaDocument[] }) {
  const kpis = props.documents.filter((d) => obj(d.value).schema === KPI_SCHEMA);
  const others = props.documents.filter((d) => obj(d.value).schema !== KPI_SCHEMA);
  const [view, setView] = useState("all");
  if (!props.documents.length) return null;
  const shown = view === "all" ? kpis : kpis.filter((d) => String(d.replica) === view);
  return (
    <section aria-labelledby="results-title" class="results">
      <h2 id="results-title">Results</h2>
      {kpis.length ? (
        <>
          <div class="field inline">
            <label for="results-view">Show</label>
            <select id="results-view" value={view} onChange={(e) => setView((e.target as HTMLSelectElement).value)}>
              <option value="all">across all replicas ({kpis.length})</option>
              {kpis.map((d) => (
                <option key={d.replica} value={String(d.replica)}>
                  replica {d.replica}
                </option>
              ))}
            </select>
          </div>
          <KpiCharts
            id={view === "all" ? "across" : `replica-${view}`}
            docs={shown}
            heading={view === "all" ? "Across replicas" : `Replica ${view}`}
          />
        </>
      ) : null}
      {others.map((doc) => (
        <Other key={doc.file.file_id} doc={doc} />
      ))}
    </section>
  );
}
