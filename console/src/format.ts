// Small display helpers shared by the views.

export function bytes(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function date(value: string | number | undefined): string {
  if (value === undefined || value === "") return "-";
  const when = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(when.getTime()) ? String(value) : when.toLocaleString();
}

export function percent(value: number): string {
  return `${(value * 100).toFixed(0)}%`;
}

export function shortId(id: string): string {
  return id.length > 10 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id;
}

/** Navigate inside the single page (hash routes: the gateway serves only `/`). */
export function go(path: string): void {
  location.hash = `#${path}`;
}
