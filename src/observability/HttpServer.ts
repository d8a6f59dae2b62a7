/**
 * The one HTTP server of a process: every route an operator or orchestrator reads is listed in `routes`.
 * The runtime (src/runtime) starts it below the stages, so it answers until the drain has finished.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { healthRoute, readyRoute } from "./Health.ts"
import { statusRoute } from "./OperatorView.ts"

/** Add a route here (a `HttpRouter.add` layer) to serve it on HTTP_PORT. */
export const routes = Layer.mergeAll(healthRoute, readyRoute, statusRoute, PrometheusMetrics.layerHttp())

/** `routes` on `port` (0: the OS picks; the address is logged). */
export const httpServer = (port: number, host = "0.0.0.0") =>
  HttpRouter.serve(routes).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host })))
