// Minimal Probot peer for bench/ingress.py: signature check + dispatch to an empty handler.
// Env: PORT, WEBHOOK_SECRET, PRIVATE_KEY_PATH (any RSA PEM; never used to call GitHub).
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { Probot, createNodeMiddleware } from "probot";

const probot = new Probot({
  appId: 1,
  privateKey: readFileSync(process.env.PRIVATE_KEY_PATH, "utf8"),
  secret: process.env.WEBHOOK_SECRET,
  logLevel: "warn",
});
const app = (app) => {
  app.on("issue_comment.created", async () => {});
};
const middleware = await createNodeMiddleware(app, { probot, webhooksPath: "/webhook" });
const server = createServer(middleware);
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ event: "listening", port: server.address().port }));
});
