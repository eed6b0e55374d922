// Shown when the API answers 401: the token is kept in this tab's session storage only.
import { useState } from "preact/hooks";

export function SignIn(props: { reason: string; onToken: (token: string) => void }) {
  const [token, setToken] = useState("");
  return (
    <section aria-labelledby="signin-title">
      <h1 id="signin-title" tabIndex={-1}>
        Sign in
      </h1>
      <p role="alert" class="error">
        The API refused the request: {props.reason}. Enter an API token to continue.
      </p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim()) props.onToken(token.trim());
        }}
      >
        <div class="field">
          <label for="token">API token</label>
          <input
            id="token"
            type="password"
            autocomplete="off"
            required
            aria-describedby="token-hint"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          />
          <p class="hint" id="token-hint">
            Kept in this browser tab only (session storage) and sent as a bearer header.
          </p>
        </div>
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}
