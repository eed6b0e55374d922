// mongo-express's package.json made installable by npm and fit for a production build:
// - yarn's "patch:" dependencies become their plain versions (the patches are applied
//   to node_modules afterwards) and yarn's resolutions become npm overrides;
// - devDependencies keep only what webpack needs (no test, lint or browser-download
//   packages: cypress and mongodb-memory-server fetch binaries when installed);
// - bootstrap-paginator, a GitHub-only fork upstream, becomes the npm package of
//   that name (no GitHub here).
const fs = require("fs");
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
const unpatch = (spec) => spec.replace(/^patch:.*@npm%3A([^#]+)#.*$/, "$1");
for (const group of ["dependencies", "devDependencies"]) {
  for (const [name, spec] of Object.entries(pkg[group] || {})) pkg[group][name] = unpatch(spec);
}
pkg.overrides = {};
for (const [key, spec] of Object.entries(pkg.resolutions || {})) {
  pkg.overrides[key.replace(/@npm:.*$/, "")] = unpatch(spec);
}
delete pkg.resolutions;
pkg.dependencies["bootstrap-paginator"] = "1.0.2";
const keep = ["@babel/core", "@babel/preset-env", "assets-webpack-plugin", "babel-loader",
  "bootstrap", "clean-webpack-plugin", "codemirror", "copy-webpack-plugin", "jquery",
  "renderjson", "webpack", "webpack-cli"];
pkg.devDependencies = Object.fromEntries(keep.map((k) => [k, pkg.devDependencies[k]]));
delete pkg.scripts.prepublish;
fs.writeFileSync("package.json", JSON.stringify(pkg, null, 2) + "\n");
