/**
 * The dashboard page's entry point: `?mode=playground` runs the in-browser simulated cluster, anything else is the
 * live view of a running cluster (`?nodes=host:port,...`).
 */
import { h } from './dom.js';
import { startLive } from './live/ui.js';
import { startPlayground } from './playground/ui.js';

const root = document.getElementById('app');
if (root !== null) {
  const params = new URLSearchParams(location.search);
  const playground = params.get('mode') === 'playground';
  document.getElementById(playground ? 'nav-playground' : 'nav-live')?.classList.add('active');
  document.title = playground ? 'Raft playground' : 'Raft cluster dashboard';
  try {
    if (playground) startPlayground(root, params);
    else
      void startLive(root, params).catch((e: unknown) => {
        root.replaceChildren(h('p', { class: 'err' }, `The live view failed to start: ${String(e)}`));
      });
  } catch (e) {
    root.replaceChildren(h('p', { class: 'err' }, `The page failed to start: ${String(e)}`));
  }
}
