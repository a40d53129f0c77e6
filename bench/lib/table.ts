// The benchmark's tables, for the terminal (aligned plain text) and for the README (Markdown).
// Pure.

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** Per column: 'l' (default for the first column) or 'r' (default for the others). */
  align?: ('l' | 'r')[];
  /** Lines printed under the table (how it was measured, what a column means). */
  notes?: string[];
}

function alignOf(table: Table, i: number): 'l' | 'r' {
  return table.align?.[i] ?? (i === 0 ? 'l' : 'r');
}

function checkShape(table: Table): void {
  for (const row of table.rows) {
    if (row.length !== table.columns.length) {
      throw new Error(
        `table "${table.title}": a row has ${row.length} cells for ${table.columns.length} columns`,
      );
    }
  }
}

export function renderText(table: Table): string {
  checkShape(table);
  const widths = table.columns.map((c, i) =>
    Math.max(c.length, ...table.rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (alignOf(table, i) === 'l' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    table.title,
    `  ${line(table.columns)}`,
    `  ${widths.map((w) => '-'.repeat(w)).join('  ')}`,
    ...table.rows.map((r) => `  ${line(r)}`),
    ...(table.notes ?? []).map((n) => `  ${n}`),
  ].join('\n');
}

function escapeCell(cell: string): string {
  return cell.replaceAll('|', '\\|');
}

export function renderMarkdown(table: Table): string {
  checkShape(table);
  const sep = table.columns.map((_, i) => (alignOf(table, i) === 'l' ? '---' : '---:'));
  const row = (cells: string[]): string => `| ${cells.map(escapeCell).join(' | ')} |`;
  return [
    `**${table.title}**`,
    '',
    row(table.columns),
    `|${sep.join('|')}|`,
    ...table.rows.map(row),
    ...(table.notes?.length ? ['', ...table.notes.map((n) => `_${n}_`)] : []),
  ].join('\n');
}
