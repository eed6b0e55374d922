// Services: the paged list, its status refreshed every few seconds while the page is open.
import { useEffect, useState } from "preact/hooks";
import { listServices, ServiceRecord } from "../api";
import { date } from "../format";
import { Pager } from "./files";
import { TableHead } from "./table";

const PAGE = 10;
const REFRESH_MS = 3000;

export function StatusBadge(props: { phase?: string; status?: string }) {
  const word = props.phase || props.status || "unknown";
  return <span class={`badge badge-${word}`}>{word}</span>;
}

export function ServicesView() {
  const [skip, setSkip] = useState(0);
  const [services, setServices] = useState<ServiceRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      listServices(skip, PAGE)
        .then((found) => {
          if (!live) return;
          setServices(found);
          setError(null);
        })
        .catch((e: Error) => live && setError(e.message));
    void load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [skip]);

  return (
    <section aria-labelledby="services-title">
      <h1 id="services-title" tabIndex={-1}>
        Services
      </h1>
      <p>
        <a class="button" href="#/launch">
          Launch a service
        </a>
      </p>
      {error ? (
        <p role="alert" class="error">
          The list could not be read: {error}
        </p>
      ) : null}
      <table>
        <TableHead
          caption="Services, newest first, status refreshed live"
          columns={["Service", "Image", "Type", "Runs", "Status", "Created"]}
        />
        <tbody>
          {(services ?? []).map((s) => (
            <tr key={s.id} data-service-id={s.id}>
              <td>
                <a href={`#/services/${s.id}`}>{s.description || s.id}</a>
                <div class="id">{s.id}</div>
              </td>
              <td>
                {s.image}:{s.version}
              </td>
              <td>{s.job_type}</td>
              <td>
                {s.succeeded_runs ?? 0} ok · {s.active_runs ?? 0} running · {s.failed_runs ?? 0}{" "}
                failed
              </td>
              <td>
                <StatusBadge phase={s.phase} status={s.status} />
              </td>
              <td>{date(s.created_at)}</td>
            </tr>
          ))}
          {services && services.length === 0 ? (
            <tr>
              <td colSpan={6}>No services {skip ? "on this page" : "launched yet"}.</td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <Pager skip={skip} count={services?.length ?? 0} page={PAGE} onSkip={setSkip} />
    </section>
  );
}
