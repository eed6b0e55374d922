// The launch form. The server validates (one set of rules, in the orchestrator); this
// form only shapes the body and puts each of the server's messages beside its field.
import { useEffect, useState } from "preact/hooks";
import { ApiError, FileRecord, LaunchBody, launch, listFiles } from "../api";
import { go } from "../format";

interface EnvRow {
  key: string;
  value: string;
}

interface Form {
  jobType: string;
  image: string;
  version: string;
  description: string;
  reps: string;
  schedule: string;
  port: string;
  env: EnvRow[];
  mounts: Record<string, string>; // file id -> name under /input
  command: string;
}

const EMPTY: Form = {
  jobType: "ondemand",
  image: "",
  version: "latest",
  description: "",
  reps: "1",
  schedule: "",
  port: "",
  env: [],
  mounts: {},
  command: "",
};

/** The histolab example as the original launched it (its image reads these variables). */
const HISTOLAB: Partial<Form> = {
  image: "ghcr.io/cam-digital-hospitals/digital-hosp-des",
  version: "latest",
  description: "Histopathology lab simulation reporting KPIs",
  reps: "2",
  env: [
    { key: "INPUT_EXCEL_FILE", value: "/input/input.xlsx" },
    { key: "OUTPUT_FOLDER", value: "/output" },
    { key: "SIM_HOURS", value: "168" },
  ],
};

/** Which form control a server field name concerns (`ana.schedule` -> schedule). */
function controlOf(field: string): string {
  const head = field.replace(/^ana\./, "").split(/[.[]/)[0];
  const known: Record<string, string> = {
    job_type: "jobType",
    image: "image",
    version: "version",
    description: "description",
    reps: "reps",
    schedule: "schedule",
    port: "port",
    env: "env",
    mount_files: "mounts",
    command: "command",
  };
  return known[head] ?? "";
}

function body(form: Form): LaunchBody {
  const env: Record<string, string> = {};
  for (const row of form.env) if (row.key) env[row.key] = row.value;
  const ana: LaunchBody["ana"] = { job_type: form.jobType };
  if (form.jobType !== "persistent" && form.reps !== "") ana.reps = Number(form.reps);
  if (form.jobType === "scheduled") ana.schedule = form.schedule;
  const out: LaunchBody = {
    image: form.image.trim(),
    version: form.version.trim(),
    description: form.description,
    env,
    mount_files: form.mounts,
    ana,
  };
  if (form.port.trim() !== "") out.port = Number(form.port);
  const command = form.command.split("\n").map((line) => line.trim()).filter(Boolean);
  if (command.length) out.command = command;
  return out;
}

function FieldError(props: { id: string; messages: string[] }) {
  if (!props.messages.length) return null;
  return (
    <p id={props.id} class="field-error" role="alert">
      {props.messages.join("; ")}
    </p>
  );
}

export function LaunchView() {
  const [form, setForm] = useState<Form>(EMPTY);
  const [stored, setStored] = useState<FileRecord[]>([]);
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    listFiles(0, 100)
      .then(setStored)
      .catch((error: Error) => setGeneral(`The stored files could not be read: ${error.message}`));
  }, []);

  const set = (patch: Partial<Form>) => setForm((old) => ({ ...old, ...patch }));
  const described = (name: string) => (errors[name]?.length ? `${name}-error` : undefined);
  /** Change one field of environment row ``n`` to what its input now holds. */
  const editEnv = (n: number, field: keyof EnvRow) => (e: Event) => {
    const env = [...form.env];
    env[n] = { ...env[n], [field]: (e.target as HTMLInputElement).value };
    set({ env });
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral(null);
    try {
      const answer = await launch(body(form));
      go(`/services/${answer.id}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const byControl: Record<string, string[]> = {};
      const unplaced: string[] = [];
      for (const violation of error.fields) {
        const control = controlOf(violation.field);
        if (control) (byControl[control] ??= []).push(violation.description);
        else unplaced.push(`${violation.field}: ${violation.description}`);
      }
      setErrors(byControl);
      if (unplaced.length || !error.fields.length)
        setGeneral(unplaced.length ? unplaced.join("; ") : error.message);
      const first = Object.keys(byControl)[0];
      if (first) document.getElementById(first)?.focus();
    } finally {
      setBusy(false);
    }
  };

  const input = (name: keyof Form, label: string, extra: Record<string, unknown> = {}) => (
    <div class="field">
      <label for={name}>{label}</label>
      <input
        id={name}
        name={name}
        value={form[name] as string}
        aria-invalid={errors[name]?.length ? "true" : undefined}
        aria-describedby={described(name)}
        onInput={(e) => set({ [name]: (e.target as HTMLInputElement).value } as Partial<Form>)}
        {...extra}
      />
      <FieldError id={`${name}-error`} messages={errors[name] ?? []} />
    </div>
  );

  return (
    <section aria-labelledby="launch-title">
      <h1 id="launch-title" tabIndex={-1}>
        Launch a service
      </h1>
      <p>
        <button type="button" class="link" onClick={() => set(HISTOLAB)}>
          Fill in the histolab example
        </button>
      </p>
      {general ? (
        <p role="alert" class="error">
          The service was not launched: {general}
        </p>
      ) : null}
      <form onSubmit={submit} noValidate>
        <div class="field">
          <label for="jobType">Job type</label>
          <select
            id="jobType"
            value={form.jobType}
            aria-describedby={described("jobType")}
            onChange={(e) => set({ jobType: (e.target as HTMLSelectElement).value })}
          >
            <option value="ondemand">on demand (runs once, reps replicas)</option>
            <option value="scheduled">scheduled (cron)</option>
            <option value="persistent">persistent (keeps running)</option>
          </select>
          <FieldError id="jobType-error" messages={errors.jobType ?? []} />
        </div>
        {input("image", "Image")}
        {input("version", "Version")}
        {input("description", "Description")}
        {form.jobType !== "persistent" ? input("reps", "Replicas", { type: "number", min: 1 }) : null}
        {form.jobType === "scheduled"
          ? input("schedule", "Schedule (cron: minute hour day-of-month month day-of-week)", {
              placeholder: "*/15 * * * *",
            })
          : null}
        {input("port", "Port (optional, 1024–65535)", { type: "number", min: 1024, max: 65535 })}
        <fieldset aria-describedby={described("env")}>
          <legend>Environment</legend>
          {form.env.map((row, n) => (
            <div class="env-row" key={n}>
              <label for={`env-key-${n}`}>Name</label>
              <input id={`env-key-${n}`} value={row.key} onInput={editEnv(n, "key")} />
              <label for={`env-value-${n}`}>Value</label>
              <input id={`env-value-${n}`} value={row.value} onInput={editEnv(n, "value")} />
              <button
                type="button"
                aria-label={`Remove variable ${row.key || n + 1}`}
                onClick={() => set({ env: form.env.filter((_, i) => i !== n) })}
              >
                Remove
              </button>
            </div>
          ))}
          <button type="button" onClick={() => set({ env: [...form.env, { key: "", value: "" }] })}>
            Add variable
          </button>
          <FieldError id="env-error" messages={errors.env ?? []} />
        </fieldset>
        <fieldset aria-describedby={described("mounts")}>
          <legend>Input files (mounted under /input)</legend>
          {stored.length === 0 ? <p>No stored files: upload one on the Files page.</p> : null}
          {stored.map((file) => {
            const chosen = file.file_id in form.mounts;
            return (
              <div class="mount-row" key={file.file_id}>
                <input
                  type="checkbox"
                  id={`mount-${file.file_id}`}
                  checked={chosen}
                  onChange={() => {
                    const mounts = { ...form.mounts };
                    if (chosen) delete mounts[file.file_id];
                    else mounts[file.file_id] = file.filename;
                    set({ mounts });
                  }}
                />
                <label for={`mount-${file.file_id}`}>
                  {file.filename} <span class="id">{file.file_id}</span>
                </label>
                {chosen ? (
                  <>
                    <label for={`mount-name-${file.file_id}`} class="visually-hidden">
                      Name under /input for {file.filename}
                    </label>
                    <input
                      id={`mount-name-${file.file_id}`}
                      value={form.mounts[file.file_id]}
                      onInput={(e) =>
                        set({
                          mounts: {
                            ...form.mounts,
                            [file.file_id]: (e.target as HTMLInputElement).value,
                          },
                        })
                      }
                    />
                  </>
                ) : null}
              </div>
            );
          })}
          <FieldError id="mounts-error" messages={errors.mounts ?? []} />
        </fieldset>
        <div class="field">
          <label for="command">Command (optional, one argument per line; replaces the image's)</label>
          <textarea
            id="command"
            rows={3}
            value={form.command}
            aria-invalid={errors.command?.length ? "true" : undefined}
            aria-describedby={described("command")}
            onInput={(e) => set({ command: (e.target as HTMLTextAreaElement).value })}
          />
          <FieldError id="command-error" messages={errors.command ?? []} />
        </div>
        <button type="submit" disabled={busy}>
          {busy ? "Launching…" : "Launch"}
        </button>
      </form>
    </section>
  );
}
