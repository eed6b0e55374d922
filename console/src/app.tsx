// The shell: landmarks, navigation, hash routes, and the sign-in when the API asks for a token.
import { useEffect, useState } from "preact/hooks";
import { getToken, onUnauthorised, PREFIX, setToken, toolLinks, type ToolLink } from "./api";
import { FilesView } from "./views/files";
import { LaunchView } from "./views/launch";
import { ServicesView } from "./views/services";
import { ServiceView } from "./views/service";
import { SignIn } from "./views/signin";

function useRoute(): string {
  const read = () => location.hash.replace(/^#/, "") || "/files";
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

const NAV = [
  { path: "/files", label: "Files" },
  { path: "/services", label: "Services" },
  { path: "/launch", label: "Launch a service" },
];

export function App() {
  const route = useRoute();
  const [refusal, setRefusal] = useState<string | null>(null);
  const [session, setSession] = useState(0); // remounts the views after a sign-in
  useEffect(() => onUnauthorised((message) => setRefusal(message)), []);
  const [tools, setTools] = useState<ToolLink[]>([]);
  useEffect(() => {
    toolLinks().then(setTools);
  }, [session, refusal]);
  useEffect(() => {
    const heading = document.querySelector("main h1");
    if (heading instanceof HTMLElement) heading.focus();
  }, [route]);

  const signedIn = (token: string) => {
    setToken(token);
    setRefusal(null);
    setSession((n) => n + 1);
  };
  const signOut = () => {
    setToken(null);
    setSession((n) => n + 1);
  };

  let view;
  const service = /^\/services\/([^/]+)$/.exec(route);
  if (refusal !== null) view = <SignIn reason={refusal} onToken={signedIn} />;
  // keyed by id: a resubmission's page starts afresh, not with the original's state
  else if (service) view = <ServiceView key={service[1]} id={decodeURIComponent(service[1])} />;
  else if (route.startsWith("/services")) view = <ServicesView />;
  else if (route.startsWith("/launch")) view = <LaunchView />;
  else view = <FilesView />;

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="banner">
        <span class="brand">dtpoc · Digital Hospital console</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.path}>
                <a
                  href={`#${item.path}`}
                  aria-current={route.startsWith(item.path) ? "page" : undefined}
                >
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        {tools.length > 0 ? (
          <nav aria-label="Tools">
            <ul>
              {tools.map((tool) => (
                <li key={tool.id}>
                  <a href={tool.url} target="_blank" rel="noopener noreferrer">
                    {tool.title}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        ) : null}
        {getToken() ? (
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        ) : null}
      </header>
      <main id="main" key={session}>
        {view}
      </main>
      <footer>
        <a href={`${PREFIX}/docs`}>REST API documentation</a>
      </footer>
    </>
  );
}
