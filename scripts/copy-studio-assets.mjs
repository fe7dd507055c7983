// The studio page's static files (HTML, CSS) beside its compiled modules in dist/, so that the
// installed package serves the page without any source file.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

const from = join("src", "studio", "web");
const to = join("dist", "studio", "web");
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from)) {
  if (/\.(html|css|svg)$/.test(name)) copyFileSync(join(from, name), join(to, name));
}
