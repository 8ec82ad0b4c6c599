// Drives the training dashboard in Debian's headless Chromium through playwright-core and checks it.
//   node tests/dashboard/dashboard.mjs --url URL --job ID --steps N --screenshot FILE.png
//        [--failed-job ID] [--cancel-job ID] [--final-only] [--through-restart] [--timeout-ms MS]
// URL is the dashboard page with ?access_token=... when the host has a token. The job ID must be
// queued or running with N total steps. With --failed-job (a job that fails) the script first selects it
// and checks that the page shows it failed, with the server's error, and offers neither cancel nor download.
// With --cancel-job (a job that runs ahead of ID) the script
// first selects that job, presses Cancel once it runs and waits for the page to show it cancelled, so
// that job ID starts while the page is open. Then it selects job ID and samples the chart's
// data-points attribute and the shown state until the job ends; it checks that the count grows
// while the job runs and ends equal to N, that the cancel button and the download link exist and
// that the link serves a zip, then saves a screenshot (and one mid-run, FILE-running.png).
// --final-only skips the growth check (and the mid-run picture), for a job that may end before the page opens.
// When it starts sampling the script prints {"watching": ID} on stdout, so that a caller may restart the
// host meanwhile; --through-restart then tolerates the refused connections while the host is down.
// Prints one JSON line with what it saw on stdout. Exit 0 when every check holds; otherwise one line
// "dashboard.mjs: error: ..." on stderr and exit 1 (a check failed), 2 (usage) or 3 (the browser or
// playwright-core is missing).
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const depsPrefix = path.join(repoRoot, '.deps', 'playwright');
const chromiumPath = '/usr/bin/chromium';
const installHint = 'run eng/install-deps.sh (it installs Debian chromium and playwright-core under .deps/)';
// Debian Chromium as root in a closed network: no sandbox, no GPU, no background connections.
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const terminal = new Set(['succeeded', 'failed', 'cancelled']);
// Sampling period of the chart's point count: short against the few seconds the test's job runs.
const sampleMs = 50;

class UsageError extends Error {}
class MissingError extends Error {}

function fail(err) {
  const msg = (err && err.message ? err.message : String(err)).replace(/\s*\n\s*/g, ' | ');
  process.stderr.write(`dashboard.mjs: error: ${msg}\n`);
  process.exit(err instanceof UsageError ? 2 : err instanceof MissingError ? 3 : 1);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function parseArgs(argv) {
  const o = { timeoutMs: 120000 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    if (key === '--final-only') { o.finalOnly = true; continue; }
    if (key === '--through-restart') { o.throughRestart = true; continue; }
    const value = argv[i + 1];
    if (value === undefined) throw new UsageError(`${key} needs a value`);
    switch (key) {
      case '--url': o.url = value; break;
      case '--job': o.job = value; break;
      case '--steps': o.steps = Number(value); break;
      case '--screenshot': o.screenshot = path.resolve(value); break;
      case '--cancel-job': o.cancelJob = value; break;
      case '--failed-job': o.failedJob = value; break;
      case '--timeout-ms': o.timeoutMs = Number(value); break;
      default: throw new UsageError(`unknown option '${key}'`);
    }
    i++;
  }
  for (const k of ['url', 'job', 'steps', 'screenshot']) {
    if (o[k] === undefined) throw new UsageError(`--${k} is required`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 2) throw new UsageError(`--steps must be an integer >= 2, got '${o.steps}'`);
  return o;
}

function loadPlaywright() {
  if (!existsSync(chromiumPath)) throw new MissingError(`${chromiumPath} not found: ${installHint}`);
  const req = createRequire(path.join(depsPrefix, 'package.json'));
  try {
    return req('playwright-core');
  } catch (e) {
    throw new MissingError(`cannot load playwright-core from ${path.join(depsPrefix, 'node_modules')} or NODE_PATH (${installHint}): ${e.message}`);
  }
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

// The samples where the point count or the state differs from the sample before, and the last one.
const changes = samples => samples.filter((s, i) => i === 0 || i === samples.length - 1
  || s.points !== samples[i - 1].points || s.state !== samples[i - 1].state);

async function readChart(page) {
  return page.evaluate(() => ({
    points: Number(document.getElementById('chart').dataset.points),
    state: document.getElementById('detail').dataset.state,
    job: document.getElementById('job-title').textContent,
  }));
}

async function selectJob(page, id, timeoutMs) {
  const row = page.locator(`tr[data-job-id="${id}"]`);
  await row.waitFor({ timeout: timeoutMs });
  await row.getByRole('button', { name: `Show job ${id}` }).click();
  await page.waitForFunction(jobId => document.getElementById('job-title').textContent === jobId
    && !document.getElementById('job-view').hidden, id, { timeout: 30000 });
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const { chromium } = loadPlaywright();
  const deadline = Date.now() + o.timeoutMs;
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'lora-dashboard-chromium-'));
  const pageErrors = [];
  const result = { job: o.job, steps: o.steps };
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: chromiumArgs,
      viewport: { width: 1280, height: 820 },
      timeout: 60000,
    });
    result.browser = context.browser()?.version() ?? 'chromium';
    const page = context.pages()[0] ?? await context.newPage();
    let watching = false; // errors count from the page load with the token on
    page.on('pageerror', e => pageErrors.push(e.message));
    // While a caller restarts the host, the page's requests are refused for a moment; nothing else is an expected error.
    const restartNoise = /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|INCOMPLETE_CHUNKED_ENCODING)|Failed to fetch/;
    page.on('console', m => {
      if (watching && m.type() === 'error' && !(o.throughRestart && restartNoise.test(m.text()))) pageErrors.push(`console: ${m.text()}`);
    });

    const url = new URL(o.url);
    if (url.searchParams.has('access_token')) {
      // The page itself is behind the token: without it the host answers 401.
      const bare = new URL(url);
      bare.searchParams.delete('access_token');
      const response = await page.goto(bare.toString());
      check(response.status() === 401, `the dashboard without access_token answered ${response.status()}, expected 401`);
      result.withoutToken = response.status();
      await page.goto('about:blank');
    }

    watching = true;
    await page.goto(o.url);
    await page.locator(`tr[data-job-id="${o.job}"]`).waitFor({ timeout: 30000 });
    result.stateAtLoad = await page.locator(`tr[data-job-id="${o.job}"]`).getAttribute('data-state');
    if (o.failedJob) {
      await selectJob(page, o.failedJob, 30000);
      await page.waitForFunction(() => document.getElementById('detail').dataset.state === 'failed', null, { timeout: 30000 });
      const message = await page.locator('#message').textContent();
      check(/^Failed: \S/.test(message), `the failed job ${o.failedJob} shows no error: message '${message}'`);
      check(await page.getByRole('button', { name: `Cancel job ${o.failedJob}` }).isDisabled(), 'the cancel button is enabled on a failed job');
      const link = page.getByRole('link', { name: `Download the adapter of job ${o.failedJob} as a zip file` });
      check(await link.getAttribute('aria-disabled') === 'true', 'the download link is enabled on a failed job');
      result.failed = { job: o.failedJob, message };
    }

    if (o.cancelJob) {
      await selectJob(page, o.cancelJob, 30000);
      // Wait until it runs, so that the cancel stops a training job, not a queue entry.
      await page.waitForFunction(() => document.getElementById('detail').dataset.state === 'running', null, { timeout: 30000 });
      const before = await readChart(page);
      check(!terminal.has(before.state), `job ${o.cancelJob} is already '${before.state}'; it cannot be cancelled from the page`);
      let confirmation = null;
      page.once('dialog', d => { confirmation = d.message(); d.accept(); });
      await page.getByRole('button', { name: `Cancel job ${o.cancelJob}` }).click();
      await page.waitForFunction(() => document.getElementById('detail').dataset.state === 'cancelled', null,
        { timeout: Math.max(1000, deadline - Date.now()) });
      check(await page.getByRole('button', { name: `Cancel job ${o.cancelJob}` }).isDisabled(), 'the cancel button is still enabled after cancelling');
      const row = page.locator(`tr[data-job-id="${o.cancelJob}"]`);
      await page.waitForFunction(id => document.querySelector(`tr[data-job-id="${id}"]`)?.dataset.state === 'cancelled', o.cancelJob, { timeout: 30000 });
      check(confirmation && confirmation.includes(o.cancelJob), `pressing Cancel asked no confirmation naming the job (dialog: ${confirmation})`);
      result.cancel = { job: o.cancelJob, stateBefore: before.state, rowState: await row.getAttribute('data-state'), confirmation };
    }

    await selectJob(page, o.job, 30000);

    // Sample until the page shows a terminal state.
    const samples = [];
    const t0 = Date.now();
    process.stdout.write(JSON.stringify({ watching: o.job }) + '\n');
    for (;;) {
      check(Date.now() < deadline, `job ${o.job} did not finish within ${o.timeoutMs} ms; last sample ${JSON.stringify(samples.at(-1))}`);
      const s = await readChart(page);
      check(s.job === o.job, `the page switched to job '${s.job}' while ${o.job} was watched`);
      samples.push({ ms: Date.now() - t0, points: s.points, state: s.state });
      if (terminal.has(s.state)) break;
      if (!o.finalOnly && !result.runningScreenshot && s.state === 'running' && s.points >= o.steps / 3) {
        // A second picture mid-run: the chart partly drawn, the job still running.
        result.runningScreenshot = o.screenshot.replace(/(\.png)?$/, '-running.png');
        mkdirSync(path.dirname(o.screenshot), { recursive: true });
        await page.screenshot({ path: result.runningScreenshot, fullPage: true });
      }
      await sleep(sampleMs);
    }
    // Growth while running: two samples, both showing 'running', the later with more points.
    const running = samples.filter(s => s.state === 'running' && s.points > 0);
    const first = running[0];
    const later = running.find(s => s.points > (first?.points ?? Infinity));
    if (!o.finalOnly) {
      check(first && later, `the chart never grew while job ${o.job} was shown running (samples where something changed: ${JSON.stringify(changes(samples))}); ` +
        'give the job more steps or a slower step');
    }
    result.growth = { first: first ?? null, later: later ?? null, samples: samples.length, runningSamples: running.length, changes: changes(samples) };

    const final = await readChart(page);
    result.finalState = final.state;
    result.finalPoints = final.points;
    check(final.state === 'succeeded', `job ${o.job} ended '${final.state}', expected 'succeeded' (message: ${await page.locator('#message').textContent()}; samples: ${JSON.stringify(changes(samples))})`);
    check(final.points === o.steps, `the chart of job ${o.job} has ${final.points} points after it succeeded, expected ${o.steps} (one per step; samples: ${JSON.stringify(changes(samples))})`);
    const label = await page.locator('#chart').getAttribute('aria-label');
    check(label.includes(`over ${o.steps} steps`), `the chart's aria-label does not describe ${o.steps} steps: '${label}'`);

    // Controls: cancel is a button named for the job, disabled once the job is over; download serves a zip.
    const cancel = page.getByRole('button', { name: `Cancel job ${o.job}` });
    check(await cancel.count() === 1, 'no button named "Cancel job ..." on the page');
    check(await cancel.isDisabled(), 'the cancel button is still enabled after the job succeeded');
    const download = page.getByRole('link', { name: `Download the adapter of job ${o.job} as a zip file` });
    check(await download.count() === 1, 'no link named "Download the adapter of job ..." on the page');
    check(await download.getAttribute('aria-disabled') === 'false', 'the download link is disabled after the job succeeded');
    const href = new URL(await download.getAttribute('href'), o.url);
    check(href.pathname.endsWith(`/jobs/${encodeURIComponent(o.job)}/adapter`), `download link points to ${href.pathname}`);
    const zip = await context.request.get(href.toString());
    const body = await zip.body();
    check(zip.status() === 200, `GET ${href.pathname} answered ${zip.status()}`);
    check(body.length >= 22 && body[0] === 0x50 && body[1] === 0x4b, `GET ${href.pathname} is not a zip (${body.length} bytes, starts ${body.subarray(0, 4).toString('hex')})`);
    result.download = { status: zip.status(), bytes: body.length, contentType: zip.headers()['content-type'] };

    mkdirSync(path.dirname(o.screenshot), { recursive: true });
    await page.screenshot({ path: o.screenshot, fullPage: true });
    result.screenshot = o.screenshot;

    check(pageErrors.length === 0, `the page reported errors: ${pageErrors.join('; ')}`);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    if (context) await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch(fail);
