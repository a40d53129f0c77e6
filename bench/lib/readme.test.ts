import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BEGIN, END, replaceSection } from './readme.ts';

describe('replaceSection', () => {
  it('replaces what is between the markers and keeps the rest', () => {
    const readme = `# x\n\n${BEGIN}\nold\nlines\n${END}\n\n## next\n`;
    assert.equal(replaceSection(readme, '\nnew table\n'), `# x\n\n${BEGIN}\nnew table\n${END}\n\n## next\n`);
  });
  it('refuses a README without the markers', () => {
    assert.throws(() => replaceSection('# x\n', 'y'), /no <!-- bench:begin/);
    assert.throws(() => replaceSection(`${END}\n${BEGIN}`, 'y'), /no <!-- bench:begin/);
  });
});
