// Files: drag-and-drop upload with progress, the paged list, download and delete.
import { useEffect, useState } from "preact/hooks";
import { ApiError, deleteFile, download, FileRecord, listFiles, upload } from "../api";
import { bytes, date } from "../format";
import { TableHead } from "./table";

const PAGE = 10;

interface Progress {
  name: string;
  loaded: number;
  total: number;
}

function Refusal(props: { error: ApiError; filename: string }) {
  const services = props.error.preconditions
    .map((p) => p.subject.replace(/^services\//, ""))
    .filter((id) => id);
  if (props.error.status === 409 && services.length) {
    return (
      <p role="alert" class="error">
        “{props.filename}” was not deleted: it is still in use by{" "}
        {services.length === 1 ? "service " : "services "}
        {services.map((id, n) => (
          <span key={id}>
            {n > 0 ? ", " : ""}
            <a href={`#/services/${id}`}>{id}</a>
          </span>
        ))}
        . {props.error.preconditions.map((p) => p.description).join("; ")}. Terminate{" "}
        {services.length === 1 ? "it" : "them"} first.
      </p>
    );
  }
  return (
    <p role="alert" class="error">
      “{props.filename}” was not deleted: {props.error.message}
    </p>
  );
}

function DropZone(props: { onFiles: (files: File[]) => void; busy: boolean }) {
  const [over, setOver] = useState(false);
  return (
    <div
      class={over ? "drop over" : "drop"}
      data-testid="dropzone"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        props.onFiles(Array.from(e.dataTransfer?.files ?? []));
      }}
    >
      <p>Drop files here, or</p>
      <label class="button" for="file-input">
        Choose files…
      </label>
      <input
        id="file-input"
        class="visually-hidden"
        type="file"
        multiple
        disabled={props.busy}
        onChange={(e) => {
          const input = e.target as HTMLInputElement;
          props.onFiles(Array.from(input.files ?? []));
          input.value = "";
        }}
      />
    </div>
  );
}

export function FilesView() {
  const [skip, setSkip] = useState(0);
  const [files, setFiles] = useState<FileRecord[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [progress, setProgress] = useState<Progress | null>(null); // the last upload's
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [refusal, setRefusal] = useState<{ error: ApiError; filename: string } | null>(null);

  const load = () =>
    listFiles(skip, PAGE)
      .then((found) => {
        setFiles(found);
        setLoadError(null);
      })
      .catch((error: Error) => setLoadError(error.message));
  useEffect(() => {
    void load();
  }, [skip]);

  const send = async (chosen: File[]) => {
    setRefusal(null);
    for (const file of chosen) {
      setBusy(true);
      setProgress({ name: file.name, loaded: 0, total: file.size });
      try {
        const answer = await upload(file, (loaded, total) =>
          setProgress({ name: file.name, loaded, total }),
        );
        setNotice(
          answer.message
            ? `${file.name}: ${answer.message} (id ${answer.file_id})`
            : `${file.name} uploaded (id ${answer.file_id})`,
        );
      } catch (error) {
        setNotice(`${file.name} was not uploaded: ${(error as Error).message}`);
      }
    }
    setBusy(false);
    await load();
  };

  const remove = async (file: FileRecord) => {
    if (!confirm(`Delete “${file.filename}”?`)) return;
    setRefusal(null);
    try {
      const answer = await deleteFile(file.file_id);
      setNotice(`${file.filename}: ${answer.message}`);
      await load();
    } catch (error) {
      if (error instanceof ApiError) setRefusal({ error, filename: file.filename });
      else setNotice(`${file.filename} was not deleted: ${(error as Error).message}`);
    }
  };

  return (
    <section aria-labelledby="files-title">
      <h1 id="files-title" tabIndex={-1}>
        Files
      </h1>
      <DropZone onFiles={(chosen) => void send(chosen)} busy={busy} />
      {progress ? (
        <div class="progress">
          <label for="upload-progress">
            {busy ? "Uploading" : "Uploaded"} {progress.name}: {bytes(progress.loaded)} of{" "}
            {bytes(progress.total)}
          </label>
          <progress id="upload-progress" max={progress.total || 1} value={progress.loaded} />
        </div>
      ) : null}
      <div aria-live="polite" class="notice">
        {notice}
      </div>
      {refusal ? <Refusal error={refusal.error} filename={refusal.filename} /> : null}
      {loadError ? (
        <p role="alert" class="error">
          The list could not be read: {loadError}
        </p>
      ) : null}
      <table>
        <TableHead
          caption="Stored files"
          columns={["Name", "Size", "Uploaded", "Metadata", "Actions"]}
        />
        <tbody>
          {(files ?? []).map((file) => (
            <tr key={file.file_id} data-file-id={file.file_id}>
              <td>
                {file.filename}
                <div class="id">{file.file_id}</div>
              </td>
              <td>{bytes(file.length)}</td>
              <td>{date(file.uploadDate)}</td>
              <td>
                <dl class="meta">
                  {Object.entries(file.metadata ?? {}).map(([key, value]) => (
                    <div key={key}>
                      <dt>{key}</dt>
                      <dd>{typeof value === "string" ? value : JSON.stringify(value)}</dd>
                    </div>
                  ))}
                </dl>
              </td>
              <td class="actions">
                <button
                  type="button"
                  onClick={() => void download(file.file_id, file.filename)}
                  aria-label={`Download ${file.filename}`}
                >
                  Download
                </button>
                <button
                  type="button"
                  class="danger"
                  onClick={() => void remove(file)}
                  aria-label={`Delete ${file.filename}`}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
          {files && files.length === 0 ? (
            <tr>
              <td colSpan={5}>No files {skip ? "on this page" : "stored yet"}.</td>
            </tr>
          ) : null}
        </tbody>
      </table>
      <Pager skip={skip} count={files?.length ?? 0} page={PAGE} onSkip={setSkip} />
    </section>
  );
}

export function Pager(props: {
  skip: number;
  count: number;
  page: number;
  onSkip: (skip: number) => void;
}) {
  return (
    <nav class="pager" aria-label="Pages">
      <button
        type="button"
        disabled={props.skip === 0}
        onClick={() => props.onSkip(Math.max(0, props.skip - props.page))}
      >
        Previous
      </button>
      <span>
        {props.count ? `${props.skip + 1}–${props.skip + props.count}` : "none"}
      </span>
      <button
        type="button"
        disabled={props.count < props.page}
        onClick={() => props.onSkip(props.skip + props.page)}
      >
        Next
      </button>
    </nav>
  );
}
