/** Colour wrapper: renderers take one of these so output is deterministic when piped. */
import pc from 'picocolors';

export interface Colors {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

export function colors(enabled: boolean): Colors {
  const c = pc.createColors(enabled);
  return { red: c.red, green: c.green, yellow: c.yellow, bold: c.bold, dim: c.dim };
}

export const NO_COLORS: Colors = colors(false);
