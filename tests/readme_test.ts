/**
 * The README's cross-references: a section the README or the library's docs point to by
 * name (`see "Workers"`, `the README's "Workers" section`) must exist as a heading. An edit
 * once dropped a whole section while the Permissions section still pointed to it.
 */

import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);

/** The README's headings, without their `#` marks. */
function headings(readme: string): string[] {
  return readme.split("\n").filter((line) => /^#{2,4} /.test(line)).map((line) =>
    line.replace(/^#+ /, "").trim()
  );
}

/** The section names `text` points to: `see "X"` and `the README's "X"`. */
function references(text: string): string[] {
  const names: string[] = [];
  for (const match of text.matchAll(/(?:\bsee|README's)\s+"([^"]+)"/g)) {
    names.push((match[1] as string).replace(/\s+/g, " "));
  }
  return names;
}

async function sourceFiles(dir: URL): Promise<URL[]> {
  const files: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) files.push(...await sourceFiles(url));
    else if (entry.name.endsWith(".ts")) files.push(url);
  }
  return files;
}

Deno.test("every README section pointed to by name exists", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const sections = headings(readme);
  const pointers: { from: string; name: string }[] = references(readme).map((name) => ({
    from: "README.md",
    name,
  }));
  for (const file of [new URL("mod.ts", root), ...await sourceFiles(new URL("src/", root))]) {
    const text = await Deno.readTextFile(file);
    // In the sources only references to the README count (not error messages).
    for (const match of text.matchAll(/README's\s+(?:\*\s+)?"([^"]+)"/g)) {
      pointers.push({ from: file.pathname, name: match[1] as string });
    }
  }
  assert.ok(pointers.some((p) => p.name === "Workers"), "the Workers section is pointed to");
  for (const { from, name } of pointers) {
    assert.ok(
      sections.some((heading) => heading.startsWith(name)),
      `${from} points to a README section "${name}", and there is no such heading`,
    );
  }
});
