// The head of each data table (files, services, a service's replicas): a caption for
// screen readers, hidden on screen, and one column header per name.

export function TableHead(props: { caption: string; columns: string[] }) {
  return (
    <>
      <caption class="visually-hidden">{props.caption}</caption>
      <thead>
        <tr>
          {props.columns.map((column) => (
            <th scope="col" key={column}>
              {column}
            </th>
          ))}
        </tr>
      </thead>
    </>
  );
}
