// The stats overlay: top-left, monospace, semi-transparent; toggled by a corner button. With the
// server's telemetry (rfb.stats `stats`) it also shows the server's latency figures and a graph
// of render() -> decoded over the last minute.

import { graphScaleMs, sparklinePoints } from './stats.js';

/** The latency graph, in CSS pixels. */
export const GRAPH_WIDTH = 240;
export const GRAPH_HEIGHT = 48;
/** How far back the graph goes (the worker keeps this much history). */
export const GRAPH_WINDOW_MS = 60_000;
const P50_COLOUR = '#6fdc8c';
const P95_COLOUR = '#ffb454';

/**
 * The overlay's lines for a stats snapshot. Pure.
 * @param {import('./decode-worker.js').ViewerStats} s
 * @param {{x: number, y: number, value: number[]} | null} [probe] the raw value under the pointer
 * @returns {string[]}
 */
export function formatStats(s, probe = null) {
  return [
    `${s.fps.toFixed(1)} fps  ${formatBitrate(s.bitrateBps)}`,
    `${s.width}x${s.height}  ${s.codecString ?? 'no stream'}${s.refines && s.codec !== 'raw' ? `  refined ${s.refines}${s.exact ? ' (exact now)' : ''}` : ''}`,
    `decode ${s.decodeLatencyMs.toFixed(1)} ms  frame ${s.lastFrameId ?? '-'}${s.paintPath ? `  paint: ${s.paintPath}` : ''}`,
    `${s.transport}/${s.envelope}  client ${s.clientId ?? '-'}${s.connected ? '' : '  (disconnected)'}`,
    `dropped ${s.framesDropped}  errors ${s.decodeErrors}  key req ${s.keyframeRequests}`,
    ...(s.server ? formatServerStats(s.server) : []),
    ...(s.renditions && s.renditions.renditions.length > 1 ? [formatRenditions(s.renditions)] : []),
    ...(s.audio && s.audio.state !== 'none' ? [formatAudio(s.audio)] : []),
    ...(s.window ? [`window ${s.window.low}..${s.window.high} (${s.window.source})  Alt+drag, Alt+A auto`] : []),
    ...(probe ? [`(${probe.x}, ${probe.y}) = ${probe.value.join(', ')}`] : []),
  ];
}

/**
 * The overlay's line for the sound. Pure.
 * @param {import('./sound.js').AudioStats} a
 */
export function formatAudio(a) {
  if (a.state !== 'playing') return `sound: ${a.state}`;
  const ms = (/** @type {number | null} */ v) => (v === null ? '-' : `${v.toFixed(0)} ms`);
  const av = a.avOffsetMs === null ? null : Math.round(a.avOffsetMs) || 0;
  const sync = av === null ? '' : `  A/V ${av >= 0 ? '+' : ''}${av} ms`;
  const output = a.outputLatencyMs === null ? '' : ` +${ms(a.outputLatencyMs)} out`;
  return `sound: ${ms(a.latencyMs)}${output}  buffer ${ms(a.depthMs)}  underruns ${a.underruns}${sync}`;
}

/**
 * The overlay's lines for the server's figures. Pure.
 * @param {import('./stats.js').ServerStats} server
 * @returns {string[]}
 */
export function formatServerStats(server) {
  return [
    `server: render→decoded p50 ${formatMs(server.latency_p50_us)} p95 ${formatMs(server.latency_p95_us)}`
      + ` max ${formatMs(server.latency_max_us)}, painted p50 ${formatMs(server.paint_p50_us)}`,
    `server: ${server.transport}  ${server.fps === null ? '-' : server.fps.toFixed(1)} fps`
      + `  ${server.bitrate_bps === null ? '-' : formatBitrate(server.bitrate_bps)}`
      + `  dropped ${server.frames_dropped ?? '-'}  queued ${formatBytes(server.queued_bytes)}`
      + `  key req ${server.keyframe_requests ?? '-'}`,
    `server: delivered ${server.delivered_bps === null ? '-' : formatBitrate(server.delivered_bps)}`
      + `${server.capacity_bps === null || server.capacity_bps === undefined ? '' : `  link >= ${formatBitrate(server.capacity_bps)}`}`
      + `  encoder target ${server.target_bps === null ? '- (rate control off)' : formatBitrate(server.target_bps)}`,
  ];
}

/**
 * The renditions line: each one's size and rate, `*` on the one shown. Pure.
 * @param {{current: number, chosen: number | null, renditions: import('./protocol.js').Rendition[]}} r
 */
export function formatRenditions(r) {
  const each = r.renditions.map((x) => `${x.id === r.current ? '*' : ''}${x.id} `
    + `${x.width ?? '?'}x${x.height ?? '?'} ${x.bitrateBps === null ? '-' : formatBitrate(x.bitrateBps)}`);
  return `renditions: ${each.join('  ')}  (${r.chosen === null ? 'by link' : `chose ${r.chosen}`})`;
}

/**
 * Microseconds as milliseconds with the unit: one decimal below 100 ms. `-` for null.
 * @param {number | null} us
 */
export function formatMs(us) {
  if (us === null || us === undefined || !Number.isFinite(us)) return '-';
  const ms = us / 1000;
  return `${ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

/** @param {number | null} bytes */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} KiB`;
  return `${bytes} B`;
}

/** @param {number} bps */
export function formatBitrate(bps) {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kbit/s`;
  return `${Math.round(bps)} bit/s`;
}

export class Overlay {
  /**
   * @param {HTMLElement} parent positioned (relative/absolute/fixed)
   * @param {{visible?: boolean, onToggle?: (visible: boolean) => void}} [options]
   */
  constructor(parent, options = {}) {
    const doc = parent.ownerDocument;
    this.onToggle = options.onToggle;
    this.panel = doc.createElement('div');
    this.panel.className = 'rfb-overlay';
    Object.assign(this.panel.style, {
      position: 'absolute',
      top: '8px',
      left: '8px',
      margin: '0',
      padding: '6px 8px',
      font: '12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
      color: '#e8e8e8',
      background: 'rgba(0, 0, 0, 0.6)',
      borderRadius: '4px',
      pointerEvents: 'none',
      zIndex: '2',
    });
    this.text = doc.createElement('pre');
    Object.assign(this.text.style, { margin: '0', font: 'inherit', whiteSpace: 'pre' });
    this.graph = doc.createElement('canvas');
    this.graph.className = 'rfb-overlay-graph';
    this.graph.title = 'server: render→decoded latency, last 60 s (green p50, orange p95)';
    Object.assign(this.graph.style, {
      display: 'none',
      width: `${GRAPH_WIDTH}px`,
      height: `${GRAPH_HEIGHT}px`,
      marginTop: '4px',
    });
    this.panel.append(this.text, this.graph);
    this.button = doc.createElement('button');
    this.button.className = 'rfb-overlay-toggle';
    this.button.type = 'button';
    this.button.title = 'stream stats';
    this.button.textContent = 'i';
    Object.assign(this.button.style, {
      position: 'absolute',
      top: '8px',
      right: '8px',
      width: '22px',
      height: '22px',
      padding: '0',
      font: 'bold 13px/20px ui-monospace, monospace',
      color: '#e8e8e8',
      background: 'rgba(0, 0, 0, 0.45)',
      border: '1px solid rgba(255, 255, 255, 0.35)',
      borderRadius: '11px',
      cursor: 'pointer',
      opacity: '0.6',
      zIndex: '3',
    });
    this.button.addEventListener('click', () => this.toggle());
    parent.append(this.panel, this.button);
    this.setVisible(options.visible ?? false);
  }

  get visible() {
    return this.panel.style.display !== 'none';
  }

  /** @param {boolean} visible */
  setVisible(visible) {
    this.panel.style.display = visible ? 'block' : 'none';
    this.onToggle?.(visible);
  }

  /** @param {boolean} [force] */
  toggle(force) {
    this.setVisible(force ?? !this.visible);
    return this.visible;
  }

  /**
   * @param {import('./decode-worker.js').ViewerStats} stats
   * @param {{x: number, y: number, value: number[]} | null} [probe]
   */
  update(stats, probe = null) {
    this.text.textContent = formatStats(stats, probe).join('\n');
    const history = stats.latencyHistory ?? [];
    this.graph.style.display = history.length > 0 ? 'block' : 'none';
    if (history.length > 0) this.drawGraph(history);
  }

  /**
   * The server's render() -> decoded p50 and p95 over the last minute, newest at the right, with
   * the scale (top line) and the current values.
   * @param {import('./stats.js').LatencySample[]} history oldest first
   */
  drawGraph(history) {
    const dpr = this.graph.ownerDocument.defaultView?.devicePixelRatio || 1;
    const w = Math.round(GRAPH_WIDTH * dpr);
    const h = Math.round(GRAPH_HEIGHT * dpr);
    if (this.graph.width !== w || this.graph.height !== h) {
      this.graph.width = w;
      this.graph.height = h;
    }
    const ctx = this.graph.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, GRAPH_WIDTH, GRAPH_HEIGHT);

    // Room for the labels above the lines.
    const top = 12;
    const plot = { width: GRAPH_WIDTH, height: GRAPH_HEIGHT - top - 1 };
    const scale = graphScaleMs(Math.max(...history.map((s) => s.p95Us)) / 1000);
    const box = { windowMs: GRAPH_WINDOW_MS, ...plot, scale };

    ctx.strokeStyle = 'rgba(255, 255, 255, 0.25)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, top + 0.5);
    ctx.lineTo(GRAPH_WIDTH, top + 0.5);
    ctx.moveTo(0, GRAPH_HEIGHT - 0.5);
    ctx.lineTo(GRAPH_WIDTH, GRAPH_HEIGHT - 0.5);
    ctx.stroke();

    for (const [key, colour] of /** @type {const} */ ([['p95Us', P95_COLOUR], ['p50Us', P50_COLOUR]])) {
      const points = sparklinePoints(history.map((s) => ({ ageMs: s.ageMs, value: s[key] / 1000 })), box);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, top + y) : ctx.lineTo(x, top + y)));
      if (points.length === 1) ctx.lineTo(points[0][0] - 2, top + points[0][1]);
      ctx.stroke();
    }

    ctx.font = '10px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillStyle = 'rgba(232, 232, 232, 0.8)';
    ctx.fillText(`${scale} ms`, 0, 0);
    const last = history[history.length - 1];
    const p95 = `p95 ${formatMs(last.p95Us)}`;
    ctx.textAlign = 'right';
    ctx.fillStyle = P95_COLOUR;
    ctx.fillText(p95, GRAPH_WIDTH, 0);
    ctx.fillStyle = P50_COLOUR;
    ctx.fillText(`p50 ${formatMs(last.p50Us)}  `, GRAPH_WIDTH - ctx.measureText(p95).width, 0);
  }

  remove() {
    this.panel.remove();
    this.button.remove();
  }
}
