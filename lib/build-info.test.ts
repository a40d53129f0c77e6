import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { commitFromGitFiles } from './build-info.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const reader =
  (files: Record<string, string>) =>
  (path: string): string | undefined =>
    files[path];

describe('commitFromGitFiles', () => {
  test('a checkout: HEAD names a branch, loose or packed', () => {
    assert.equal(
      commitFromGitFiles(
        '/r/.git',
        reader({ '/r/.git/HEAD': 'ref: refs/heads/main\n', '/r/.git/refs/heads/main': `${A}\n` }),
      ),
      A.slice(0, 12),
    );
    assert.equal(
      commitFromGitFiles(
        '/r/.git',
        reader({
          '/r/.git/HEAD': 'ref: refs/heads/main\n',
          '/r/.git/packed-refs': `# pack-refs\n${B} refs/heads/main\n`,
        }),
      ),
      B.slice(0, 12),
    );
  });

  test('a detached HEAD', () => {
    assert.equal(commitFromGitFiles('/r/.git', reader({ '/r/.git/HEAD': `${B}\n` })), B.slice(0, 12));
  });

  test('a linked worktree: .git is a file, the refs live in the common dir', () => {
    const files = {
      '/wt/x/.git': 'gitdir: /main/.git/worktrees/x\n',
      '/main/.git/worktrees/x/HEAD': 'ref: refs/heads/review\n',
      '/main/.git/worktrees/x/commondir': '../..\n',
      '/main/.git/refs/heads/review': `${A}\n`,
    };
    assert.equal(commitFromGitFiles('/wt/x/.git', reader(files)), A.slice(0, 12));
    // A relative gitdir is relative to the worktree; the branch only in packed-refs.
    assert.equal(
      commitFromGitFiles(
        '/wt/x/.git',
        reader({
          '/wt/x/.git': 'gitdir: ../../main/.git/worktrees/x\n',
          '/main/.git/worktrees/x/HEAD': 'ref: refs/heads/review\n',
          '/main/.git/worktrees/x/commondir': '../..\n',
          '/main/.git/packed-refs': `${B} refs/heads/review\n`,
        }),
      ),
      B.slice(0, 12),
    );
  });

  test('no git, or a branch without a commit yet: undefined', () => {
    assert.equal(commitFromGitFiles('/r/.git', reader({})), undefined);
    assert.equal(
      commitFromGitFiles('/r/.git', reader({ '/r/.git/HEAD': 'ref: refs/heads/new\n' })),
      undefined,
    );
    assert.equal(commitFromGitFiles('/r/.git', reader({ '/r/.git/HEAD': 'garbage\n' })), undefined);
  });
});
