/**
 * A hand-written SVG line chart: categories on x (family sizes), time on a
 * log-scale y axis, one polyline per series through the measured points; a
 * point stopped by a cap is drawn hollow at the cap with an arrow up.
 */

export interface Point {
  /** Milliseconds, or null when not measured. */
  readonly ms: number | null;
  /** Stopped by a cap: the true time is larger. */
  readonly capped?: boolean;
}

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dash?: string;
  readonly points: readonly Point[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function scalingSvg(title: string, xLabels: readonly string[], series: readonly Series[], note: string): string {
  const W = 820;
  const H = 480;
  const m = { l: 70, r: 200, t: 40, b: 70 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.points.map((p) => p.ms)).filter((x): x is number => x !== null && x > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(Math.min(...all, 1), 0.01)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 10)));
  const y = (ms: number) =>
    m.t + ph - ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const n = xLabels.length;
  const x = (i: number) => m.l + ((i + 0.5) / n) * pw;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
  );
  // y grid: decades
  for (let e = Math.log10(lo); e <= Math.log10(hi) + 1e-9; e++) {
    const v = 10 ** e;
    const yy = y(v).toFixed(1);
    const label = v >= 1000 ? `${v / 1000} s` : `${v} ms`;
    out.push(
      `<line x1="${m.l}" y1="${yy}" x2="${m.l + pw}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${label}</text>`,
    );
  }
  xLabels.forEach((l, i) => {
    const xx = x(i).toFixed(1);
    out.push(
      `<line x1="${xx}" y1="${m.t}" x2="${xx}" y2="${m.t + ph}" stroke="#f0f0f0"/>`,
      `<text x="${xx}" y="${m.t + ph + 18}" text-anchor="middle">${esc(l)}</text>`,
    );
  });
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${m.l + pw / 2}" y="${H - 30}" text-anchor="middle">size (vCPUs × accesses × moves)</text>`,
    `<text x="16" y="${m.t + ph / 2}" transform="rotate(-90 16 ${m.t + ph / 2})" text-anchor="middle">time (log scale)</text>`,
    `<text x="${m.l}" y="${H - 10}" fill="#555" font-size="11">${esc(`${note}; hollow ↑ = stopped by the cap (the time is larger)`)}</text>`,
  );
  series.forEach((s, si) => {
    const pts = s.points.map((p, i) => ({ ...p, i })).filter((p) => p.ms !== null && p.ms > 0);
    // Lines join measured points only; a capped point (a lower bound) is a hollow marker with an arrow up.
    const measured = pts.filter((p) => !p.capped);
    const xy = (p: { i: number; ms: number | null }) => `${x(p.i).toFixed(1)},${y(p.ms as number).toFixed(1)}`;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    if (measured.length > 1)
      out.push(
        `<polyline points="${measured.map(xy).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`,
      );
    const firstCapped = pts.find((p) => p.capped);
    const lastMeasured = measured.filter((p) => !firstCapped || p.i < firstCapped.i).pop();
    if (firstCapped && lastMeasured)
      out.push(
        `<polyline points="${xy(lastMeasured)} ${xy(firstCapped)}" fill="none" stroke="${s.color}" stroke-width="1" stroke-dasharray="1 3"/>`,
      );
    for (const p of pts) {
      const cx = x(p.i).toFixed(1);
      const cy = y(p.ms as number);
      out.push(
        `<circle cx="${cx}" cy="${cy.toFixed(1)}" r="4" fill="${p.capped ? 'white' : s.color}" stroke="${s.color}" stroke-width="2"><title>${esc(`${s.name} ${xLabels[p.i]}: ${p.capped ? '> ' : ''}${Math.round(p.ms as number)} ms`)}</title></circle>`,
      );
      if (p.capped)
        out.push(
          `<path d="M${cx} ${(cy - 6).toFixed(1)} v-12 m-3 4 l3 -4 l3 4" fill="none" stroke="${s.color}" stroke-width="1.5"/>`,
        );
    }
    const ly = m.t + 10 + si * 20;
    out.push(
      `<line x1="${m.l + pw + 12}" y1="${ly}" x2="${m.l + pw + 36}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
      `<text x="${m.l + pw + 42}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
