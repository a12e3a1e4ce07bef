// The web console in real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): a new customer's whole path, live updates between two customers,
// the money forms' once-only promise, CSRF and ownership refusals, a keyboard-only path,
// an axe-core accessibility check of every page (no serious or critical violation) and
// no Content-Security-Policy violation on any page. With COFFER_SCREENSHOTS_DIR set, the
// main pages are photographed there (docs/screenshots/ is made that way: see README).
//
// Run by tools/browser/run.sh, which builds the server and installs what this needs;
// COFFER_BIN names the `coffer` binary to start (on SQLite in a temporary directory).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const screenshots = process.env.COFFER_SCREENSHOTS_DIR;
const PASSWORD = "correct horse battery staple";

let server;
let base;
let browser;
let dataDir;

/** Starts `coffer serve` on a free port and resolves with its address. */
function startServer() {
  const binary = process.env.COFFER_BIN;
  assert.ok(binary, "COFFER_BIN must name the coffer binary (tools/browser/run.sh sets it)");
  dataDir = mkdtempSync(path.join(tmpdir(), "coffer-browser-"));
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith("COFFER_") || name === "DATABASE_URL") delete env[name];
  }
  Object.assign(env, {
    COFFER_LOG_FORMAT: "json",
    COFFER_LOG: "info",
    COFFER_ARGON2_MEMORY_KIB: "1024",
    COFFER_MONEY_REQUESTS_PER_MINUTE: "100000",
  });
  server = spawn(binary, ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--grpc-listen", "none"], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("coffer did not start within 30 s")), 30_000);
    server.on("exit", (code) => reject(new Error(`coffer exited with ${code}`)));
    createInterface({ input: server.stderr }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.message === "listening") {
        clearTimeout(timer);
        resolve(`http://${entry.address}`);
      } else if (entry.level === "ERROR") {
        console.error(line);
      }
    });
  });
}

before(async () => {
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.COFFER_CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  if (screenshots) mkdirSync(screenshots, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A browser window of its own (own cookies), failing on any CSP violation or script error. */
async function person(viewport = { width: 1100, height: 900 }) {
  const context = await browser.newContext({ baseURL: base, viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") page.problems.push(message.text());
  });
  page.on("pageerror", (error) => page.problems.push(String(error)));
  return page;
}

/** Checks the page as it is now: no serious or critical axe violation, no CSP or script error. */
async function check(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `accessibility of ${name}`,
  );
  assert.deepEqual(page.problems.filter((text) => !(name === "not-found" && text.includes("404"))), [], `console errors on ${name}`);
  if (screenshots) await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

function email(tag) {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

async function register(page, name, address) {
  await page.goto("/app/register");
  await check(page, "register");
  await page.fill("#name", name);
  await page.fill("#email", address);
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(`${base}/app`), page.click("button:has-text('Create my account')")]);
}

async function openWallet(page, currency, name) {
  await page.goto("/app");
  await page.selectOption("#currency", currency);
  await page.fill("#wallet-name", name);
  await Promise.all([page.waitForURL(/\/app\/wallets\/[0-9a-f-]{36}\?done=opened$/), page.click("button:has-text('Open wallet')")]);
  return new URL(page.url()).pathname.split("/").pop();
}

async function available(page) {
  return (await page.textContent("dd.available")).trim();
}

let ada;
let bob;
let adaEmail;
let bobEmail;
let adaWallet;
let bobWallet;

test("a new customer signs up, opens a wallet and tops it up", async () => {
  ada = await person();
  adaEmail = email("ada");
  await register(ada, "Ada Lovelace", adaEmail);
  await check(ada, "home-empty");
  adaWallet = await openWallet(ada, "USD", "Everyday");
  await ada.fill("#top-up-amount", "50");
  await Promise.all([ada.waitForURL(/done=top-up$/), ada.click("button:has-text('Top up')")]);
  assert.equal(await available(ada), "50.00 USD");
  await check(ada, "wallet");
});

test("money sent to a second customer appears on their open page without a reload", async () => {
  bob = await person();
  bobEmail = email("bob");
  await register(bob, "Bob Babbage", bobEmail);
  bobWallet = await openWallet(bob, "USD", "");
  await bob.goto("/app");
  await bob.waitForFunction(() => document.getElementById("live-status")?.dataset.state === "live");
  await ada.goto(`/app/wallets/${adaWallet}`);
  await ada.fill("#send-to", bobEmail);
  await ada.fill("#send-amount", "12.50");
  await ada.fill("#send-description", "Lunch");
  await Promise.all([ada.waitForURL(/done=sent$/), ada.click("button:has-text('Send')")]);
  assert.equal(await available(ada), "37.50 USD");
  await bob.waitForFunction(
    (id) => document.querySelector(`tr[data-wallet="${id}"] .available`)?.textContent.trim() === "12.50 USD",
    bobWallet,
    { timeout: 10_000 },
  );
  assert.match(await bob.textContent("table.operations"), /received/);
  await check(bob, "home-live");
});

test("history shows both sides, filters and exports", async () => {
  await ada.goto("/app/history");
  const adaHistory = await ada.textContent("table.operations");
  assert.match(adaHistory, /sent/);
  assert.match(adaHistory, /-12\.50 USD/);
  assert.match(adaHistory, /top-up/);
  await check(ada, "history");
  await ada.selectOption("#f-type", "top_up");
  await Promise.all([ada.waitForURL(/type=top_up/), ada.click("button:has-text('Filter')")]);
  const filtered = await ada.textContent("table.operations");
  assert.doesNotMatch(filtered, /sent/);
  await bob.goto("/app/history");
  assert.match(await bob.textContent("table.operations"), /received[\s\S]*12\.50 USD[\s\S]*Lunch/);
  const [download] = await Promise.all([ada.waitForEvent("download"), ada.click("a:has-text('Download all as CSV')")]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.equal(csv.trim().split("\n").length, 3, csv);
});

test("another customer's wallet is a 404 page", async () => {
  const response = await bob.goto(`/app/wallets/${adaWallet}`);
  assert.equal(response.status(), 404);
  assert.equal((await bob.textContent("h1")).trim(), "Not found");
  await check(bob, "not-found");
});

test("a form submitted twice moves money once", async () => {
  await ada.goto(`/app/wallets/${adaWallet}`);
  const before = await available(ada);
  assert.equal(before, "37.50 USD");
  let posts = 0;
  ada.on("request", (request) => {
    if (request.method() === "POST" && request.url().endsWith("/top-up")) posts += 1;
  });
  await ada.fill("#top-up-amount", "10");
  await ada.dblclick("button:has-text('Top up')");
  await ada.waitForURL(/done=top-up$/);
  assert.equal(await available(ada), "47.50 USD");
  // The same form's data sent twice more (a resubmit): the key makes them one top-up.
  await ada.goto(`/app/wallets/${adaWallet}`);
  await ada.fill("#top-up-amount", "1");
  const statuses = await ada.evaluate(async () => {
    const form = document.querySelector("form[action$='/top-up']");
    const send = () => fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)) });
    const answers = await Promise.all([send(), send()]);
    return answers.map((answer) => answer.status);
  });
  assert.deepEqual(statuses, [200, 200], "both answered with the wallet page (after the redirect)");
  await ada.goto(`/app/wallets/${adaWallet}`);
  assert.equal(await available(ada), "48.50 USD");
  assert.ok(posts >= 3, `the browser sent the forms (${posts} POSTs)`);
});

test("a POST without the form's CSRF token is refused and changes nothing", async () => {
  await ada.goto(`/app/wallets/${adaWallet}`);
  const status = await ada.evaluate(async (wallet) => {
    const body = new URLSearchParams({ key: crypto.randomUUID(), amount: "5", token: "tok_visa" });
    return (await fetch(`/app/wallets/${wallet}/top-up`, { method: "POST", body })).status;
  }, adaWallet);
  assert.equal(status, 403);
  ada.problems.length = 0; // the refusal, logged by the browser, is this test's point
  await ada.reload();
  assert.equal(await available(ada), "48.50 USD");
});

test("send money with the keyboard alone", async () => {
  await ada.goto(`/app/wallets/${adaWallet}`);
  await ada.evaluate(() => document.activeElement?.blur());
  let focused = "";
  for (let presses = 0; presses < 40 && focused !== "send-to"; presses += 1) {
    await ada.keyboard.press("Tab");
    focused = await ada.evaluate(() => document.activeElement?.id ?? "");
  }
  assert.equal(focused, "send-to", "Tab reaches the recipient field");
  await ada.keyboard.type(bobEmail);
  await ada.keyboard.press("Tab");
  await ada.keyboard.type("1.50");
  await ada.keyboard.press("Tab");
  await ada.keyboard.type("by keyboard");
  await ada.keyboard.press("Tab");
  assert.equal(await ada.evaluate(() => document.activeElement?.textContent.trim()), "Send");
  await Promise.all([ada.waitForURL(/done=sent$/), ada.keyboard.press("Enter")]);
  assert.equal(await available(ada), "47.00 USD");
});

test("expenses show in the monthly chart, and a budget warns at 80 %", async () => {
  await ada.goto("/app/money");
  const groceries = await ada.$eval("#budget-category", (select) =>
    [...select.options].find((option) => option.textContent.endsWith("Groceries")).value,
  );
  await ada.selectOption("#budget-category", groceries);
  await ada.fill("#budget-amount", "100");
  await Promise.all([ada.waitForURL(/done=budget/), ada.click("button:has-text('Save budget')")]);
  for (const [merchant, amount] of [["Whole Foods", "45"], ["Trader Joe's", "40"]]) {
    await ada.fill("#expense-amount", amount);
    await ada.fill("#expense-merchant", merchant);
    await Promise.all([ada.waitForURL(/done=added/), ada.click("button:has-text('Add expense')")]);
  }
  const chart = ada.locator("img.chart").first();
  await chart.waitFor();
  assert.ok(await chart.evaluate((img) => img.complete && img.naturalWidth > 0), "the chart is drawn");
  assert.match(await ada.textContent("ul.budgets"), /Warning: 85 % used/);
  assert.match(await ada.textContent("table.expenses"), /by its merchant/);
  await check(ada, "money");
  await ada.click("a:has-text('Categories and rules')");
  await ada.waitForURL(/\/app\/money\/categories$/);
  await ada.fill("#rule-name", "Pet shop");
  await ada.fill("#rule-merchant", "PETCO");
  await Promise.all([ada.waitForURL(/done=rule/), ada.click("button:has-text('Add rule')")]);
  assert.match(await ada.textContent("table.rules"), /merchant contains “PETCO”/);
  await check(ada, "categories");
});

test("a CSV statement is imported with its per-line report", async () => {
  await ada.goto("/app/money");
  await ada.click("a:has-text('Import a statement or link a bank')");
  await ada.waitForURL(/\/app\/money\/statements$/);
  await check(ada, "statements");
  await ada.setInputFiles("#import-file", {
    name: "statement.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("date,amount,description\n2026-11-02,-12.50,TESCO STORES\n2026-11-03,oops,COFFEE\n"),
  });
  await ada.selectOption("#import-currency", "GBP");
  await ada.click("button:has-text('Import')");
  await ada.waitForSelector("#import-report");
  assert.match(await ada.textContent("#import-report"), /1 imported, 0 already here, 0 skipped, 1 rejected/);
  await check(ada, "import-report");
});

test("a monthly payment is scheduled, then paused", async () => {
  await ada.goto("/app/scheduled");
  await ada.fill("#schedule-to", bobEmail);
  await ada.fill("#schedule-amount", "5");
  await ada.selectOption("#schedule-frequency", "monthly");
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await ada.fill("#schedule-start", tomorrow);
  await Promise.all([ada.waitForURL(/done=created/), ada.click("button:has-text('Schedule')")]);
  assert.match(await ada.textContent("table.schedules"), /monthly[\s\S]*active/);
  await check(ada, "scheduled");
  await Promise.all([ada.waitForURL(/done=changed/), ada.click("button:has-text('Pause')")]);
  assert.match(await ada.textContent("table.schedules"), /paused/);
});

test("account: sessions listed, password form; sign-in page", async () => {
  await ada.goto("/app/account");
  assert.match(await ada.textContent("table"), /this browser/);
  await check(ada, "account");
  const visitor = await person();
  await visitor.goto("/app/sign-in");
  await check(visitor, "sign-in");
  await visitor.fill("#email", adaEmail);
  await visitor.fill("#password", "wrong password here");
  await visitor.click("button:has-text('Sign in')");
  assert.match(await visitor.textContent(".problem"), /do not match/);
  await visitor.fill("#password", PASSWORD);
  await Promise.all([visitor.waitForURL(`${base}/app`), visitor.click("button:has-text('Sign in')")]);
  await visitor.context().close();
});

test("an operator finds the transfer in the ledger explorer", async () => {
  const operator = await person();
  const operatorEmail = email("ops");
  await register(operator, "Olga Operator", operatorEmail);
  await operator.goto("/admin");
  assert.equal((await operator.textContent("h1")).trim(), "Not found", "a customer has no operator console");
  operator.problems.length = 0; // that 404 was the point
  // The admin API key (written to the data directory at first start) makes them an operator.
  const adminKey = readFileSync(path.join(dataDir, "admin-api-key"), "utf8").trim();
  const found = await (await fetch(`${base}/v1/customers?limit=100`, { headers: { authorization: `Bearer ${adminKey}` } })).json();
  const id = found.data.find((customer) => customer.email === operatorEmail).id;
  const promoted = await fetch(`${base}/v1/customers/${id}/role`, {
    method: "PUT",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ role: "admin" }),
  });
  assert.equal(promoted.status, 200);
  await operator.goto("/admin");
  await check(operator, "admin-overview");
  await operator.click("a:has-text('Customers')");
  await operator.fill("#q", bobEmail);
  await Promise.all([operator.waitForURL(/q=/), operator.click("button:has-text('Find')")]);
  await check(operator, "admin-customers");
  await Promise.all([operator.waitForURL(/\/admin\/customers\/[0-9a-f-]{36}$/), operator.click("a:has-text('Bob Babbage')")]);
  assert.match(await operator.textContent("table.operations"), /received/);
  await check(operator, "admin-customer");
  await operator.click("table.wallets a");
  assert.match(await operator.textContent("h2#account-heading"), new RegExp(bobWallet));
  await operator.locator("tr", { hasText: "12.50 USD" }).locator("a").first().click();
  await operator.waitForSelector("#transfer-heading");
  assert.match(await operator.textContent("dl.facts"), /12\.50 USD/);
  await check(operator, "admin-ledger");
  await operator.click("a:has-text('Webhooks and emails')");
  await operator.waitForURL(/\/admin\/outbound$/);
  assert.match(await operator.textContent("#emails-heading"), /Emails/);
  await check(operator, "admin-outbound");
  await operator.context().close();
});

test("the home page is light: under 150 KB with its assets, and readable at phone width", async () => {
  const phone = await person({ width: 390, height: 844 });
  let sizes = [];
  phone.on("response", (response) => {
    // Redirects have no body: they count as nothing.
    sizes.push(response.body().then((body) => body.length, () => 0));
  });
  await phone.goto("/app/sign-in");
  await phone.fill("#email", adaEmail);
  await phone.fill("#password", PASSWORD);
  await Promise.all([phone.waitForURL(`${base}/app`), phone.click("button:has-text('Sign in')")]);
  // Cold: nothing cached from the sign-in page.
  const devtools = await phone.context().newCDPSession(phone);
  await devtools.send("Network.clearBrowserCache");
  sizes = [];
  await phone.goto("/app", { waitUntil: "networkidle" });
  const bytes = (await Promise.all(sizes)).reduce((sum, size) => sum + size, 0);
  assert.ok(bytes > 0 && bytes < 150 * 1024, `home page with assets: ${bytes} bytes`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 390 px (${overflow} px over)`);
  await check(phone, "home-phone");
  console.log(`home page with assets: ${bytes} bytes`);
  await phone.context().close();
});
