{{/*
Node-RED settings.js: the editor and its admin API need a login (the
generated password's bcrypt hash comes from the environment), and stored
flow credentials are encrypted with a generated key.
*/}}
{{- define "dtpoc.nodeRedSettings" -}}
module.exports = {
  uiPort: 1880,
  flowFile: "flows.json",
  flowFilePretty: true,
  credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
  adminAuth: {
    type: "credentials",
    users: [{
      username: process.env.NODE_RED_ADMIN_USERNAME,
      password: process.env.NODE_RED_ADMIN_PASSWORD_BCRYPT,
      permissions: "*",
    }],
  },
  // No npm installs from the editor: the root filesystem is read-only and
  // the flow comes from the chart's values.
  externalModules: {
    autoInstall: false,
    palette: { allowInstall: false },
    modules: { allowInstall: false },
  },
  diagnostics: { enabled: false },
  telemetry: { enabled: false },
  logging: { console: { level: "info", metrics: false, audit: false } },
};
{{- end -}}
