// A module worker that runs the Python sandbox from inside itself, as the inference
// worker does: a normal program, one that times out after 1 s, then a normal one.
import { PythonSandbox } from '/sandbox.js';

const sandbox = new PythonSandbox();
const results = [];
for (const program of ['print(6 * 7)', 'while True:\n    pass', 'print(7 * 6)']) {
  results.push(await sandbox.run(program, 1000));
}
sandbox.terminate();
postMessage(results);
