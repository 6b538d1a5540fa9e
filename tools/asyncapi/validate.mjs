// Parses an AsyncAPI document with the official parser and prints its diagnostics as JSON lines
// (severity 0 = error, 1 = warning, 2 = information, 3 = hint); exits 1 when there is an error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
const channels = document ? document.channels().all().map((c) => c.address()) : [];
console.log(JSON.stringify({ parsed: Boolean(document), channels }));
process.exit(document && !diagnostics.some((d) => d.severity === 0) ? 0 : 1);
