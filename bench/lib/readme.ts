// The README's Performance section is written by a full `npm run bench`, between two markers,
// like the other generated parts of the README: the tables and chart always come from a real
// run, with the machine, the date and the command that produced them. Pure.

export const BEGIN = '<!-- bench:begin (written by a full `npm run bench`) -->';
export const END = '<!-- bench:end -->';

export function replaceSection(readme: string, content: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin === -1 || end === -1 || end < begin) {
    throw new Error(`README.md has no ${BEGIN} ... ${END} section`);
  }
  return `${readme.slice(0, begin + BEGIN.length)}\n${content.trim()}\n${readme.slice(end)}`;
}
