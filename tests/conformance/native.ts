/**
 * Side effect: this process tests `nativeDriver` (node:sqlite). Imported first by
 * tests/conformance/native_test.ts, and preloaded (`deno run --preload`) into the fixture
 * children of that run, so subprocesses use the driver under test too.
 *
 * @module
 */

import { registerAs } from "./as_driver.ts";

registerAs("native");
