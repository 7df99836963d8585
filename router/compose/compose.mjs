// Composes the supergraph from the subgraphs' SDL (exported by `adx schema export`, no server).
//
// stdin:  {"subgraphs": [{"name": "workflow", "url": "http://127.0.0.1:4005/graphql", "sdl": "..."}]}
// stdout: {"supergraphSdl": "...", "publicSdl": "..."}            exit 0
//         {"errors": [{"message": "...", "code": "..."}]}          exit 1 (composition failed)
// Python (adx/schema_command.py) owns the files; this script only composes.
import { parse } from "graphql";
import { composeServices } from "@theguild/federation-composition";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function fail(errors) {
  process.stdout.write(JSON.stringify({ errors }) + "\n");
  process.exitCode = 1;
}

const input = JSON.parse(await readStdin());
const services = [];
const parseErrors = [];
for (const { name, url, sdl } of input.subgraphs) {
  try {
    services.push({ name, url, typeDefs: parse(sdl) });
  } catch (error) {
    parseErrors.push({ message: `[${name}] ${error.message}`, code: "PARSE_ERROR" });
  }
}

if (parseErrors.length) {
  fail(parseErrors);
} else if (services.length === 0) {
  fail([{ message: "no subgraphs to compose", code: "NO_SUBGRAPHS" }]);
} else {
  const result = composeServices(services);
  if (result.errors) {
    fail(result.errors.map((e) => ({ message: e.message, code: e.extensions?.code ?? null })));
  } else {
    process.stdout.write(
      JSON.stringify({ supergraphSdl: result.supergraphSdl, publicSdl: result.publicSdl }) + "\n",
    );
  }
}
