// The stats overlay: top-left, monospace, semi-transparent; toggled by a corner button.

/**
 * The overlay's lines for a stats snapshot. Pure.
 * @param {import('./decode-worker.js').ViewerStats} s
 * @returns {string[]}
 */
export function formatStats(s) {
  return [
    `${s.fps.toFixed(1)} fps  ${formatBitrate(s.bitrateBps)}`,
    `${s.width}x${s.height}  ${s.codecString ?? 'no stream'}`,
    `decode ${s.decodeLatencyMs.toFixed(1)} ms  frame ${s.lastFrameId ?? '-'}`,
    `${s.transport}/${s.envelope}  client ${s.clientId ?? '-'}${s.connected ? '' : '  (disconnected)'}`,
    `dropped ${s.framesDropped}  errors ${s.decodeErrors}  key req ${s.keyframeRequests}`,
  ];
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
    this.panel = doc.createElement('pre');
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
      whiteSpace: 'pre',
      zIndex: '2',
    });
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

  /** @param {import('./decode-worker.js').ViewerStats} stats */
  update(stats) {
    this.panel.textContent = formatStats(stats).join('\n');
  }

  remove() {
    this.panel.remove();
    this.button.remove();
  }
}
