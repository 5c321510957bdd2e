// The rfbsink Jupyter widget (anywidget): mounts the stream's own viewer module in the cell.
//
// Where the stream is reached from, in this order ("mode" auto):
//   1. through Jupyter's own server: <base_url>proxy/<port>/ (jupyter-server-proxy). Works when
//      only Jupyter's port is reachable (an SSH tunnel, JupyterHub); same origin as the page,
//      Jupyter's login cookie passes, rfbsink's token travels as rfb_token (no clash with
//      Jupyter's `token`). WebSocket only: WebTransport would need the stream's UDP port.
//   2. directly at the stream's own address, when the page may (the Jupyter page's origin is in
//      the Stream's allowed_origins).

/** Jupyter's base URL as the browser sees it (JupyterHub: /user/<name>/). */
function jupyterBase() {
  const config = document.getElementById('jupyter-config-data');
  if (config) {
    try {
      const base = JSON.parse(config.textContent || '{}').baseUrl;
      if (typeof base === 'string' && base) return base.endsWith('/') ? base : `${base}/`;
    } catch {
      // not JSON: fall through
    }
  }
  return '/';
}

/**
 * Whether the stream answers at `root` (its /rfb.json, with the token): '' when it does, else why
 * not (the server's one-line reason for a refusal).
 */
async function answers(root, token) {
  try {
    const url = new URL(`rfb.json?rfb_token=${encodeURIComponent(token)}`, root);
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (response.ok) return '';
    const reason = (await response.text()).trim().split('\n')[0].slice(0, 200);
    return `HTTP ${response.status}${reason ? ` ${reason}` : ''}`;
  } catch (e) {
    return `${e?.message ?? e}`;
  }
}

function render({ model, el }) {
  const width = model.get('width');
  const height = model.get('height');
  const box = document.createElement('div');
  box.className = 'rfbsink-widget';
  Object.assign(box.style, {
    width: '100%',
    maxWidth: `${Math.max(width, 320)}px`,
    aspectRatio: `${width} / ${height}`,
    maxHeight: `${model.get('max_height')}px`,
    background: '#111',
    position: 'relative',
  });
  const note = document.createElement('div');
  Object.assign(note.style, { color: '#ccc', font: '13px sans-serif', padding: '8px', overflowWrap: 'anywhere' });
  note.textContent = 'rfbsink: connecting…';
  box.append(note);
  el.append(box);

  let viewer = null;
  let gone = false;
  (async () => {
    const port = model.get('port');
    const token = model.get('token');
    const mode = model.get('mode');
    const proxyRoot = new URL(`${jupyterBase()}proxy/${port}/`, location.href).href;
    const directRoot = model.get('direct_root');
    let root = null;
    let via = '';
    const why = { proxy: 'not tried', direct: 'not tried' };
    if (mode !== 'direct') {
      why.proxy = await answers(proxyRoot, token);
      if (!why.proxy) [root, via] = [proxyRoot, 'proxy'];
    }
    if (!root && mode !== 'proxy') {
      why.direct = await answers(directRoot, token);
      if (!why.direct) [root, via] = [directRoot, 'direct'];
    }
    if (gone) return;
    if (!root) {
      box.style.aspectRatio = 'auto'; // the explanation's height, not the picture's
      // A 404 from Jupyter: no jupyter-server-proxy. A 403 from rfbsink: this page's host name
      // or origin is not one the stream answers to (Jupyter reached by a name, JupyterHub).
      note.textContent =
        `rfbsink: this page reaches the stream neither through Jupyter (${proxyRoot}: ${why.proxy}; ` +
        'jupyter-server-proxy must be installed where Jupyter runs: pip install "rfbsink[jupyter]") ' +
        `nor directly (${directRoot}: ${why.direct}). If Jupyter answered 403 "Host" or "Origin", ` +
        `make the Stream with allowed_origins=("${location.origin}",) or set ` +
        `RFBSINK_ALLOWED_ORIGINS=${location.origin} where the kernel runs.`;
      return;
    }
    const { mountViewer } = await import(new URL('rfb-viewer.js', root).href);
    if (gone) return;
    const ws = new URL(`ws?rfb_token=${encodeURIComponent(token)}`, root);
    ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
    note.remove();
    viewer = mountViewer(box, { url: ws.href, transport: via === 'proxy' ? 'ws' : 'auto' });
    box.dataset.rfbVia = via;
    // For page scripts and tests: the cell's viewer (sendMessage, onMessage, samplePixels, stats).
    el.rfbViewer = viewer;
    box.rfbViewer = viewer;
  })().catch((e) => {
    note.textContent = `rfbsink: ${e?.message ?? e}`;
  });

  return () => {
    gone = true;
    viewer?.close();
  };
}

export default { render };
