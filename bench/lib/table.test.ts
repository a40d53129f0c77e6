import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMarkdown, renderText, type Table } from './table.ts';

const table: Table = {
  title: 'throughput',
  columns: ['body', 'req/s', 'ratio'],
  rows: [
    ['course', '12345', '0.81'],
    ['large | 97 KB', '901', '0.7'],
  ],
  notes: ['medians of 5 rounds'],
};

describe('tables', () => {
  it('text: the first column left-aligned, numbers right-aligned, notes below', () => {
    assert.equal(
      renderText(table),
      [
        'throughput',
        '  body           req/s  ratio',
        '  -------------  -----  -----',
        '  course         12345   0.81',
        '  large | 97 KB    901    0.7',
        '  medians of 5 rounds',
      ].join('\n'),
    );
  });
  it('markdown: alignment row, escaped pipes, notes in italics', () => {
    assert.equal(
      renderMarkdown(table),
      [
        '**throughput**',
        '',
        '| body | req/s | ratio |',
        '|---|---:|---:|',
        '| course | 12345 | 0.81 |',
        '| large \\| 97 KB | 901 | 0.7 |',
        '',
        '_medians of 5 rounds_',
      ].join('\n'),
    );
  });
  it('refuses a row that does not fit the columns', () => {
    const bad = { ...table, rows: [['course', '1']] };
    assert.throws(() => renderText(bad), /a row has 2 cells for 3 columns/);
    assert.throws(() => renderMarkdown(bad), /a row has 2 cells for 3 columns/);
  });
});
