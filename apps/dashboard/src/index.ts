/**
 * `@raft/dashboard`: the live cluster dashboard and the in-browser Raft playground. The package's Node export is the
 * small static server that serves the bundled page; the page itself is built into `dist/web`.
 *
 * @packageDocumentation
 */
export {
  DashboardError,
  type DashboardServer,
  type DashboardServerOptions,
  defaultWebDir,
  startDashboardServer,
} from './server.js';
