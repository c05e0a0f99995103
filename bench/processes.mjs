// Peak resident set sizes of a Chromium instance's processes, read from /proc (Linux).
import { readFileSync, readdirSync } from 'node:fs';

function readProcess(pid) {
  try {
    // Chromium rewrites the command line of its child processes into one
    // space-separated string, so flags are matched as substrings.
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    // The command name in /proc/PID/stat is in parentheses and may contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return { pid, parent, commandLine };
  } catch {
    return null;
  }
}

// VmHWM of `pid` in bytes, or null once the process is gone.
export function peakRssBytes(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : null;
  } catch {
    return null;
  }
}

// Lists the browser process started with `--user-data-dir=<userDataDir>` and all its
// descendants, each with its Chromium process type (browser, renderer, gpu-process...).
export function chromiumProcesses(userDataDir) {
  const all = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).map(readProcess).filter(Boolean);
  const root = all.find((p) => p.commandLine.includes(`--user-data-dir=${userDataDir} `) && !p.commandLine.includes('--type='));
  if (!root) return [];
  const found = [root];
  for (let index = 0; index < found.length; index += 1) {
    found.push(...all.filter((p) => p.parent === found[index].pid));
  }
  return found.map((p) => ({
    pid: p.pid,
    type: p.commandLine.match(/--type=([\w-]+)/)?.[1] ?? 'browser',
    peakRssBytes: peakRssBytes(p.pid),
  }));
}

// Summarizes the processes of one browser: the largest renderer peak (the page and its
// workers run there), the GPU process peak, and the sum of every process's peak. That sum
// is an upper bound of the browser's peak, because the processes peak at different times.
export function browserMemory(userDataDir) {
  const processes = chromiumProcesses(userDataDir);
  const peak = (type) => Math.max(0, ...processes.filter((p) => p.type === type).map((p) => p.peakRssBytes ?? 0));
  return {
    rendererPeakRssBytes: peak('renderer') || null,
    gpuProcessPeakRssBytes: peak('gpu-process') || null,
    sumOfPeakRssBytes: processes.reduce((sum, p) => sum + (p.peakRssBytes ?? 0), 0) || null,
    processes: processes.length,
  };
}
