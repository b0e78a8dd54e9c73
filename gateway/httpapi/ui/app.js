// canary control room. Plain JavaScript, no build step, nothing loaded from
// outside. State comes from the JSON API and is kept live by the event
// stream (/api/v1/events), read with fetch so it can carry the login token.
'use strict';

const PRIO_WORD = { 1: 'P1 Emergency', 2: 'P2 High', 3: 'P3 Medium', 4: 'P4 Low' };
const STATE_WORD = {
  unacknowledged: 'UNACK',
  acknowledged: 'ACK',
  returned_unacknowledged: 'RTN UNACK',
  shelved: 'SHELVED',
  out_of_service: 'OUT OF SERVICE',
  normal: 'NORMAL',
};
const FLOOD_WINDOW_MS = 10 * 60 * 1000;
const FLOOD_LIMIT = 10; // more than 10 annunciated alarms in 10 min (EEMUA 191, ISA-18.2)

const st = {
  info: { site: '', name: '', anonymous: 'viewer', stale_after_s: 30 },
  auth: null, // {token, user, role}
  readings: new Map(), // "dev/sensor" -> reading (+ _rx: local receive time)
  alarms: new Map(), // id -> alarm
  devices: new Map(), // id -> device
  log: [], // transitions, oldest first
  holds: { gen: -1, holds: [] }, // the fault holds in force (/api/v1/holds), the newest list by gen
  sort: 'priority',
  selected: null, // "dev/sensor"
  trend: null, // {device, sensor, unit, limits, points}
  streamAbort: null,
  cmd: null, // {action, alarm, opener}
  snapUntil: 0, // performance.now() until which a stream item may have raced the snapshot
  // alarmTick counts the alarm updates from the stream and the loads;
  // alarmSeen is the tick of each alarm's last stream update, alarmsLoaded
  // the tick of the last load (onCommandAnswer).
  alarmTick: 0,
  alarmSeen: new Map(),
  alarmsLoaded: 0,
};

// A stream item produced after the subscription but before the snapshot was
// read arrives after the snapshot, and may be older than it: such an item is
// dropped, and only such an item. Once the first seconds after the snapshot
// are over, or the stream has updated the entry, the stream's order is the
// truth whatever the timestamps say: after a step of the gateway's wall clock
// back every later ts is older, and comparing them would hide every update of
// the entry (an alarm annunciated again, a new value) for the step's length.
const RACE_MS = 2000;
function racedSnapshot(old, fresh, field) {
  return !!old && old._snap === true && performance.now() < st.snapUntil && Date.parse(old[field]) > Date.parse(fresh[field]);
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// ---- auth ----------------------------------------------------------------

function loadAuth() {
  try {
    const a = JSON.parse(sessionStorage.getItem('canary.auth') || 'null');
    if (a && a.token) st.auth = a;
  } catch (_) { st.auth = null; }
}

function headers(extra) {
  const h = { 'X-Canary-UI': '1', ...(extra || {}) };
  if (st.auth) h.Authorization = 'Bearer ' + st.auth.token;
  return h;
}

function canCommand() {
  return st.auth && (st.auth.role === 'operator' || st.auth.role === 'engineer');
}

// Out of service and back is maintenance, the engineer's (SAFETY.md): the
// buttons show for an engineer only; the gateway checks the role again.
function isEngineer() {
  return !!st.auth && st.auth.role === 'engineer';
}

function b64(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function renderWho() {
  $('user-label').textContent = st.auth ? `${st.auth.user} (${st.auth.role})` : 'not logged in';
  $('login-btn').hidden = !!st.auth;
  $('logout-btn').hidden = !st.auth;
}

function openLogin(message) {
  $('login-error').textContent = message || '';
  $('login-pass').value = '';
  const d = $('login-dlg');
  if (!d.open) d.showModal();
  $('login-user').focus();
}

async function doLogin(ev) {
  ev.preventDefault();
  const user = $('login-user').value.trim();
  const pass = $('login-pass').value;
  $('login-error').textContent = '';
  try {
    const res = await fetch('/api/v1/session', {
      method: 'POST',
      headers: { 'X-Canary-UI': '1', Authorization: 'Basic ' + b64(user + ':' + pass) },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      $('login-error').textContent = body.error || `login failed (${res.status})`;
      $('login-pass').value = '';
      $('login-pass').focus();
      return;
    }
    st.auth = { token: body.token, user: body.user, role: body.role };
    sessionStorage.setItem('canary.auth', JSON.stringify(st.auth));
    $('login-dlg').close();
    renderWho();
    renderAlarms();
    restartStream();
  } catch (e) {
    $('login-error').textContent = 'login failed: ' + e.message;
  }
}

async function logout() {
  if (st.auth) {
    fetch('/api/v1/session', { method: 'DELETE', headers: headers() }).catch(() => {});
  }
  st.auth = null;
  sessionStorage.removeItem('canary.auth');
  renderWho();
  renderAlarms();
  if (st.info.anonymous === 'none') openLogin('');
  restartStream();
}

function authExpired() {
  st.auth = null;
  sessionStorage.removeItem('canary.auth');
  renderWho();
  renderAlarms();
  if (st.info.anonymous === 'none') {
    openLogin('Your session has ended; please log in again.');
  } else {
    // Anyone may watch: the screen goes on live (a wall screen after a
    // gateway restart must not stop at a login dialog), and says how to act.
    $('user-label').textContent = 'session ended: log in to act';
  }
}

// ---- loading and the live stream ------------------------------------------

async function getJSON(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) {
    const err = new Error('unauthorized');
    err.status = 401;
    throw err;
  }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

async function loadAll() {
  const [readings, alarms, devices, history, holds] = await Promise.all([
    getJSON('/api/v1/readings'), getJSON('/api/v1/alarms'),
    getJSON('/api/v1/devices'), getJSON('/api/v1/history?limit=200'),
    getJSON('/api/v1/holds'),
  ]);
  // A new process (a restart) counts from 0 again: the load is the truth.
  st.holds = holds;
  const now = Date.now();
  st.snapUntil = performance.now() + RACE_MS;
  st.readings.clear();
  for (const r of readings) { r._rx = now; r._snap = true; st.readings.set(key(r.device, r.sensor), r); }
  st.alarms.clear();
  st.alarmTick++; // a command's answer from before this load is older than it
  st.alarmsLoaded = st.alarmTick;
  for (const a of alarms) { a._snap = true; st.alarms.set(a.id, a); }
  st.devices.clear();
  for (const d of devices) st.devices.set(d.id, d);
  st.log = history;
  renderAll();
  if (st.selected) loadTrend(st.selected);
}

function key(device, sensor) { return device + '/' + sensor; }

function setConn(live, text) {
  const c = $('conn');
  c.className = 'conn ' + (live ? 'live' : 'down');
  c.textContent = text || (live ? 'live' : 'disconnected, retrying');
}

function restartStream() {
  if (st.streamAbort) st.streamAbort.abort();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function streamLoop() {
  for (;;) {
    const ctrl = new AbortController();
    st.streamAbort = ctrl;
    try {
      if (st.info.anonymous === 'none' && !st.auth) {
        setConn(false, 'log in to see live data');
        await waitAbort(ctrl.signal);
        continue;
      }
      const res = await fetch('/api/v1/events', { headers: headers(), signal: ctrl.signal, cache: 'no-store' });
      if (res.status === 401) {
        if (st.auth) {
          authExpired();
          if (st.info.anonymous !== 'none') continue; // on, anonymously, at once
        } else openLogin('');
        setConn(false, 'log in to see live data');
        await waitAbort(ctrl.signal);
        continue;
      }
      if (!res.ok || !res.body) throw new Error('events: ' + res.status);
      // Subscribe first, then load the snapshot: nothing falls between.
      await loadAll();
      setConn(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          handleBlock(block);
        }
      }
    } catch (e) {
      if (e && e.status === 401) { authExpired(); continue; }
      if (ctrl.signal.aborted) continue; // login or logout: reconnect now
    }
    setConn(false);
    await sleep(2000);
  }
}

function waitAbort(signal) {
  return new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}

function handleBlock(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let val = i < 0 ? '' : line.slice(i + 1);
    if (val.startsWith(' ')) val = val.slice(1);
    if (field === 'event') event = val;
    else if (field === 'data') data.push(val);
  }
  if (!data.length) return;
  let v;
  try { v = JSON.parse(data.join('\n')); } catch (_) { return; }
  switch (event) {
    case 'reading': onReading(v); break;
    case 'alarm': onAlarm(v); break;
    case 'transition': onTransition(v); break;
    case 'device': onDevice(v); break;
    case 'holds': onHolds(v); break;
    case 'resync': restartStream(); break;
  }
}

// A reading this much older than the trend's newest point means the
// gateway's clock was stepped back (trend.go's stepBack).
const STEP_BACK_MS = 60 * 1000;

function onReading(r) {
  const k = key(r.device, r.sensor);
  const old = st.readings.get(k);
  if (racedSnapshot(old, r, 'ts')) return;
  r._rx = Date.now();
  st.readings.set(k, r);
  if (!old) renderDevices(); else updateSensor(k);
  if (st.trend && st.selected === k) {
    const pts = st.trend.points;
    const t = Date.parse(r.ts);
    // Older than the chart's newest point by more than a minute: the
    // gateway's clock was stepped back. Start the chart afresh at the new
    // time, as the server's trend does (trend.go, stepBack), instead of
    // freezing it until the clock passes its old points again.
    if (pts.length && t < Date.parse(pts[pts.length - 1].ts) - STEP_BACK_MS) pts.length = 0;
    if (!pts.length || Date.parse(pts[pts.length - 1].ts) < t) {
      pts.push({ ts: r.ts, value: r.value, quality: r.quality });
      const cut = Date.parse(r.ts) - 15 * 60 * 1000;
      while (pts.length && Date.parse(pts[0].ts) < cut) pts.shift();
      scheduleTrend();
    }
  }
}

function onAlarm(a) {
  const old = st.alarms.get(a.id);
  if (racedSnapshot(old, a, 'updated')) return;
  st.alarmSeen.set(a.id, ++st.alarmTick);
  setAlarm(a.id, a);
}

function setAlarm(id, a) {
  if (!a || a.state === 'normal') st.alarms.delete(id); else st.alarms.set(id, a);
  scheduleAlarms();
}

// A command's answer carries the alarm's state right after it, but the
// stream may have brought a newer one before the answer arrived (the alarm
// returned, or was raised again): the answer then is stale and is dropped.
// The stream carries the command's own change too, so nothing is lost; the
// answer matters when the stream is down.
function onCommandAnswer(id, a, sentAt) {
  if ((st.alarmSeen.get(id) ?? 0) > sentAt || st.alarmsLoaded > sentAt) return;
  setAlarm(id, a);
}

// A list of the holds in force from the stream: newer than the one held
// only if its gen is (one made before the load may arrive after it).
function onHolds(h) {
  if (h.gen <= st.holds.gen) return;
  st.holds = h;
  renderHold();
}

function onTransition(t) {
  if (st.log.length && st.log.some((x) => x.seq === t.seq && x.alarm === t.alarm && x.ts === t.ts)) return;
  st.log.push(t);
  if (st.log.length > 500) st.log.splice(0, st.log.length - 500);
  renderLog();
  renderFlood();
}

function onDevice(d) {
  st.devices.set(d.id, d);
  renderDevices();
}

// ---- rendering: alarms ---------------------------------------------------------

function prioClass(p) { return p >= 1 && p <= 4 ? 'p' + p : 'p0'; }

function isUnacked(a) { return a.state === 'unacknowledged' || a.state === 'returned_unacknowledged'; }

// since is null for an alarm never active (a normal alarm shelved): oldest.
// Two nulls give NaN, which falls through to the id like a tie.
function sinceMs(a) { return a.since ? Date.parse(a.since) : -Infinity; }

function sortAlarms(list) {
  const pk = (p) => (p >= 1 && p <= 4 ? p : 0);
  if (st.sort === 'time') {
    for (const a of list) a._grouped = false;
    return list.sort((a, b) => sinceMs(b) - sinceMs(a) || a.id.localeCompare(b.id));
  }
  list.sort((a, b) =>
    pk(a.priority) - pk(b.priority) ||
    (isUnacked(b) ? 1 : 0) - (isUnacked(a) ? 1 : 0) ||
    sinceMs(b) - sinceMs(a) ||
    a.id.localeCompare(b.id));
  // The levels of one sensor (high and high_high at 1.8 %vol methane, each
  // its own alarm) are listed together, most severe first, where the most
  // severe of them falls in that order (DESIGN.md: the display groups them
  // by sensor).
  const groups = new Map();
  for (const a of list) {
    const k = alarmSource(a);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(a);
  }
  const out = [];
  for (const g of groups.values()) {
    g.forEach((a, i) => { a._grouped = i > 0; out.push(a); });
  }
  return out;
}

// alarmSource is what an alarm is about: its sensor, or for a voting
// group's alarm (no sensor) the group, its id before the condition.
function alarmSource(a) {
  if (a.device && a.sensor) return a.device + '\u0000' + a.sensor;
  const i = a.id.lastIndexOf('.');
  return i > 0 ? a.id.slice(0, i) : a.id;
}

function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '\u2014';
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e6)) return v.toExponential(2);
  return (Math.round(v * 1000) / 1000).toString();
}

// Limit conditions compare the value in the sensor's unit; comm, bad and
// frozen limits are times or flags, so they get no unit.
const UNIT_CONDITIONS = new Set(['high_high', 'high', 'low', 'low_low', 'deviation', 'twa', 'stel']);

function unitOf(a) {
  const r = st.readings.get(key(a.device, a.sensor));
  return r && UNIT_CONDITIONS.has(a.condition) ? r.unit : '';
}

function fmtTime(ts) {
  if (!ts || ts.startsWith('0001-')) return '\u2014';
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour12: false }) + (Date.now() - d > 86400000 ? ' ' + d.toLocaleDateString() : '');
}

function fmtAge(s) {
  if (s < 60) return Math.max(0, Math.round(s)) + 's';
  if (s < 3600) return Math.round(s / 60) + 'm';
  if (s < 86400) return (s / 3600).toFixed(1) + 'h';
  return Math.round(s / 86400) + 'd';
}

function actionButtons(a) {
  const td = el('td', { class: 'actions' });
  const mk = (action, label) => td.append(el('button', {
    type: 'button', 'data-action': action, 'data-alarm': a.id,
    'aria-label': `${label} ${a.id}`, text: label,
    onclick: (e) => openCommand(action, a.id, e.currentTarget, a.active),
  }));
  if (isUnacked(a)) mk('ack', 'Ack');
  if (a.state === 'shelved') mk('unshelve', 'Unshelve');
  else if (a.state !== 'out_of_service') mk('shelve', 'Shelve');
  if (a.latched) mk('reset', 'Reset');
  if (isEngineer()) {
    // A point's bypassed and a group's degraded alarm stand while their
    // cause does: never out of service.
    if (a.state === 'out_of_service') mk('return_to_service', 'In service');
    else if (a.condition !== 'bypassed' && a.condition !== 'degraded') mk('out_of_service', 'Out of service');
  }
  return td;
}

function alarmRow(a) {
  const unit = unitOf(a);
  const sub = [a.device, a.sensor].filter(Boolean).join(' \u00b7 ');
  const tr = el('tr', {
    class: `alarm ${prioClass(a.priority)} ${isUnacked(a) ? 'unacked' : 'acked'}${a._grouped ? ' grouped' : ''}`,
    'data-alarm': a.id, 'data-state': a.state,
  },
  el('td', {}, el('span', { class: `prio ${prioClass(a.priority)}`, text: PRIO_WORD[a.priority] || 'P? Unknown' })),
  el('td', {}, el('span', { class: `state ${a.state}`, text: STATE_WORD[a.state] || a.state }),
    a.latched ? el('span', { class: 'latched', title: 'latched: stays until reset', text: 'LATCHED' }) : null,
    a.held ? el('span', { class: 'held', title: 'held by the fault hold: read well again, but kept active while the gateway was overloaded; it returns once the gateway is calm', text: 'HELD' }) : null),
  el('td', {}, el('div', { class: 'alarm-id', text: a.id }),
    el('div', { class: 'alarm-sub', text: `${a.condition.replace('_', ' ')}${sub ? ' \u2014 ' + sub : ''}${a.active ? '' : ' (returned)'}` })),
  el('td', { class: 'num', 'data-label': 'value', text: fmtNum(a.value) + (unit && a.value !== null ? ' ' + unit : '') }),
  el('td', { class: 'num', 'data-label': 'limit', text: fmtNum(a.limit) + (unit && a.limit !== null ? ' ' + unit : '') }),
  el('td', { 'data-label': 'since', text: fmtTime(a.since) }),
  el('td', { class: 'wide', text: [a.acked_by, a.comment].filter(Boolean).join(': ') }),
  actionButtons(a));
  return tr;
}

let alarmsQueued = false;
function scheduleAlarms() {
  if (alarmsQueued) return;
  alarmsQueued = true;
  requestAnimationFrame(() => { alarmsQueued = false; renderAlarms(); });
}

function renderAlarms() {
  // Keep keyboard focus on the same button across a re-render.
  const f = document.activeElement;
  const focusKey = f && f.dataset && f.dataset.alarm ? [f.dataset.alarm, f.dataset.action] : null;
  const all = [...st.alarms.values()];
  const main = sortAlarms(all.filter((a) => a.state !== 'shelved' && a.state !== 'out_of_service'));
  const shelved = sortAlarms(all.filter((a) => a.state === 'shelved' || a.state === 'out_of_service'));
  $('alarm-rows').replaceChildren(...main.map(alarmRow));
  $('shelved-rows').replaceChildren(...shelved.map(alarmRow));
  $('alarm-count').textContent = String(main.length);
  $('shelved-count').textContent = String(shelved.length);
  $('no-alarms').hidden = main.length > 0;
  if (focusKey) {
    const b = document.querySelector(`button[data-alarm="${CSS.escape(focusKey[0])}"][data-action="${focusKey[1]}"]`);
    if (b) b.focus();
  }
  renderDevices();
}

// ---- rendering: devices and sensors ----------------------------------------------

function worstAlarm(device, sensor) {
  let best = null;
  for (const a of st.alarms.values()) {
    if (a.device !== device || a.sensor !== sensor || !a.active || a.state === 'shelved' || a.state === 'out_of_service') continue;
    if (!best || (a.priority || 9) < (best.priority || 9)) best = a;
  }
  return best;
}

function ageOf(r) {
  return (r.age_s || 0) + (Date.now() - (r._rx || Date.now())) / 1000;
}

function sensorState(k) {
  const r = st.readings.get(k);
  const age = ageOf(r);
  const stale = r.stale || age > st.info.stale_after_s;
  return { r, age, stale };
}

function updateSensor(k) {
  const b = document.querySelector(`button.sensor[data-sensor="${CSS.escape(k)}"]`);
  if (!b) return;
  const { r, age, stale } = sensorState(k);
  const w = worstAlarm(r.device, r.sensor);
  b.className = `sensor q-${r.quality}${stale ? ' stale' : ''}${w ? ' in-alarm a' + prioClass(w.priority) : ''}${st.selected === k ? ' selected' : ''}`;
  // A bad reading is no measurement, whatever number came with it (a
  // detector in fault may report 0, which must not read as clean air).
  const shown = r.quality === 'bad' || r.value === null || r.value === undefined ? '\u2014' : fmtNum(r.value);
  b.querySelector('.v').textContent = shown;
  b.title = r.quality === 'bad' && r.value !== null && r.value !== undefined ? `bad reading (the device sent ${fmtNum(r.value)})` : '';
  b.querySelector('.s-unit').textContent = r.unit || '';
  const q = r.quality === 'good' ? '' : r.quality.toUpperCase() + ' \u00b7 ';
  // A sensor never read has no age: counted from the page's load it read
  // as a value a few seconds old.
  const when = r.ts ? `${fmtAge(age)} ago` : 'NEVER READ';
  b.querySelector('.s-meta').textContent = `${q}${stale ? 'STALE \u00b7 ' : ''}${when}${w ? ' \u00b7 ' + (PRIO_WORD[w.priority] || 'alarm') : ''}`;
  b.setAttribute('aria-label', `${r.device} ${r.sensor}: ${b.querySelector('.v').textContent} ${r.unit}, ${r.quality}${stale ? ', stale' : ''}`);
}

function renderDevices() {
  const byDev = new Map();
  for (const d of st.devices.keys()) byDev.set(d, []);
  for (const [k, r] of st.readings) {
    if (!byDev.has(r.device)) byDev.set(r.device, []);
    byDev.get(r.device).push(k);
  }
  const cards = [];
  for (const [id, keys] of [...byDev].sort((a, b) => a[0].localeCompare(b[0]))) {
    const d = st.devices.get(id) || { id, state: 'unknown' };
    const card = el('article', { class: 'device', 'data-device': id },
      el('div', { class: 'device-head' },
        el('span', { class: 'device-name', text: id }),
        el('span', { class: `comm ${d.state}`, 'data-comm': d.state, text: (d.state || 'unknown').toUpperCase() })),
      d.error && d.state !== 'online' ? el('p', { class: 'device-err', text: d.error + (d.last_ok && !d.last_ok.startsWith('0001-') ? ` (last answer ${fmtTime(d.last_ok)})` : '') }) : null);
    for (const k of keys.sort()) {
      const r = st.readings.get(k);
      card.append(el('button', {
        type: 'button', class: 'sensor', 'data-sensor': k,
        onclick: () => selectSensor(k),
      },
      el('span', { class: 's-name', text: r.sensor }),
      el('span', { class: 's-val' }, el('span', { class: 'v' }), el('span', { class: 's-unit' })),
      el('span', { class: 's-meta' }),
      el('span', { class: 's-kind', text: r.kind })));
    }
    cards.push(card);
  }
  const f = document.activeElement;
  const fk = f && f.dataset ? f.dataset.sensor : null;
  $('devices').replaceChildren(...cards);
  for (const k of st.readings.keys()) updateSensor(k);
  if (fk) { const b = document.querySelector(`button.sensor[data-sensor="${CSS.escape(fk)}"]`); if (b) b.focus(); }
}

// ---- trend chart ---------------------------------------------------------------

async function selectSensor(k) {
  st.selected = k;
  for (const b of document.querySelectorAll('button.sensor')) b.classList.toggle('selected', b.dataset.sensor === k);
  await loadTrend(k);
}

async function loadTrend(k) {
  const [dev, sen] = k.split('/');
  try {
    st.trend = await getJSON(`/api/v1/trends/${encodeURIComponent(dev)}/${encodeURIComponent(sen)}`);
  } catch (e) {
    st.trend = null;
    $('trend').replaceChildren(el('p', { class: 'empty', text: 'No trend: ' + e.message }));
    return;
  }
  renderTrend();
}

let trendQueued = false;
function scheduleTrend() {
  if (trendQueued) return;
  trendQueued = true;
  setTimeout(() => { trendQueued = false; renderTrend(); }, 500);
}

const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderTrend() {
  const t = st.trend;
  if (!t) return;
  $('trend-title').textContent = `${t.device} \u00b7 ${t.sensor}${t.unit ? ' (' + t.unit + ')' : ''}`;
  const W = 640, H = 260, L = 52, R = 12, T = 12, B = 26;
  const pts = t.points.map((p) => ({ t: Date.parse(p.ts), v: p.value, q: p.quality }));
  const now = Date.now();
  const t1 = Math.max(now, pts.length ? pts[pts.length - 1].t : now);
  const t0 = Math.min(t1 - 60 * 1000, pts.length ? pts[0].t : t1 - 15 * 60 * 1000);
  const vals = pts.filter((p) => p.v !== null).map((p) => p.v);
  const limits = t.limits || [];
  let lo = Math.min(...vals, ...limits.map((l) => l.limit));
  let hi = Math.max(...vals, ...limits.map((l) => l.limit));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const x = (ms) => L + ((ms - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Trend of ${t.device} ${t.sensor} with alarm limits` });
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    s.append(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    s.append(svg('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v)));
  }
  s.append(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
  s.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const span = (t1 - t0) / 1000;
  for (let i = 0; i <= 3; i++) {
    const ms = t0 + ((t1 - t0) * i) / 3;
    const ago = (t1 - ms) / 1000;
    s.append(svg('text', { class: 'tick', x: x(ms), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle' },
      i === 3 ? 'now' : '\u2212' + fmtAge(ago)));
  }
  for (const l of limits) {
    const cls = prioClass(l.priority);
    s.append(svg('line', { class: `limit ${cls}`, 'data-limit': l.condition, x1: L, x2: W - R, y1: y(l.limit), y2: y(l.limit) }));
    s.append(svg('text', { class: `limit-label ${cls}`, x: W - R - 4, y: y(l.limit) - 4, 'text-anchor': 'end' },
      `${l.condition.replace('_', ' ').toUpperCase()} ${fmtNum(l.limit)}`));
  }
  // Bad samples break the line and are marked on the axis: a gap, not a value.
  let seg = [];
  const flush = () => {
    if (seg.length > 1) s.append(svg('polyline', { class: 'series', points: seg.join(' ') }));
    else if (seg.length === 1) { const [px, py] = seg[0].split(','); s.append(svg('circle', { class: 'series', cx: px, cy: py, r: 1.5 })); }
    seg = [];
  };
  for (const p of pts) {
    if (p.v === null || p.q === 'bad') {
      flush();
      s.append(svg('rect', { class: 'bad-mark', x: x(p.t) - 1, y: H - B - 4, width: 2, height: 4 }));
      continue;
    }
    seg.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  }
  flush();
  s.append(svg('title', {}, `${t.device} ${t.sensor} over ${fmtAge(span)}`));
  $('trend').replaceChildren(s);
}

// ---- event log and flood banner --------------------------------------------------

function renderLog() {
  const items = st.log.slice(-200).reverse().map((t) => el('li', { 'data-seq': String(t.seq) },
    el('span', { class: 't', text: fmtTime(t.ts) }),
    el('span', { class: 'ty', text: t.type }),
    el('span', { text: `${t.alarm} ${t.from || ''}\u2192${t.to || ''}` + (t.value !== null && t.value !== undefined ? ` (${fmtNum(t.value)})` : '') }),
    t.user ? el('span', { class: 'by', text: ` by ${t.user}` }) : null,
    t.comment ? el('span', { text: `: \u201c${t.comment}\u201d` }) : null));
  $('log').replaceChildren(...items);
}

function renderFlood() {
  const since = Date.now() - FLOOD_WINDOW_MS;
  const n = st.log.filter((t) => t.to === 'unacknowledged' && t.from !== 'unacknowledged' && Date.parse(t.ts) >= since).length;
  const b = $('flood');
  b.hidden = n <= FLOOD_LIMIT;
  b.textContent = `ALARM FLOOD: ${n} alarms annunciated in the last 10 minutes. Work P1 first; do not acknowledge in bulk.`;
}

// The fault hold: an overloaded gateway keeps its sensors' comm and bad
// alarms active until it has run calm (docs/alarms.md). Without this
// banner an operator would see such alarms stay while the values update.
function renderHold() {
  const b = $('fault-hold');
  const holds = st.holds.holds || [];
  b.hidden = holds.length === 0;
  if (!holds.length) return;
  const where = holds.map((t) => (t.alarm ? `${t.alarm.slice(0, -1)} ` : '') + `since ${fmtTime(t.ts)}`).join(', ');
  b.textContent = `GATEWAY OVERLOADED (${where}): communication-loss and bad-quality alarms stay active until it has run calm for a while; values shown are live.`;
  b.title = holds.map((t) => t.comment).join('\n');
}

function renderAll() {
  $('site-name').textContent = st.info.name || st.info.site || '';
  document.title = `canary \u2014 ${st.info.name || st.info.site || 'control room'}`;
  renderWho();
  renderAlarms();
  renderLog();
  renderFlood();
  renderHold();
}

// ---- commands ------------------------------------------------------------------

const ACTION_TITLE = {
  ack: 'Acknowledge', shelve: 'Shelve', unshelve: 'Unshelve', reset: 'Reset',
  out_of_service: 'Take out of service', return_to_service: 'Return to service',
};
// A reason is on record for these (ISA-18.2; the gateway refuses them without).
const REASON_REQUIRED = { shelve: true, out_of_service: true };

function openCommand(action, alarm, opener, active) {
  if (!canCommand()) {
    openLogin(st.auth ? `User ${st.auth.user} (${st.auth.role}) may not do this; log in as an operator.` : 'Log in as an operator to act on alarms.');
    return;
  }
  st.cmd = { action, alarm, opener };
  $('cmd-title').textContent = `${ACTION_TITLE[action]} alarm`;
  $('cmd-alarm').textContent = alarm;
  $('cmd-user').textContent = `as ${st.auth.user} (${st.auth.role})`;
  $('cmd-ok').textContent = ACTION_TITLE[action];
  $('cmd-duration-label').hidden = action !== 'shelve';
  $('cmd-oos-label').hidden = action !== 'out_of_service';
  // Each dialog starts from the usual choice, not the last one made; a
  // one-shot shelve lasts until an active alarm returns, so only for one.
  $('cmd-duration').value = '30m';
  $('cmd-oos-duration').value = '4h';
  $('cmd-one-shot').disabled = !active;
  $('cmd-required').textContent = REASON_REQUIRED[action] ? '(reason required)' : '(optional)';
  $('cmd-comment').required = !!REASON_REQUIRED[action];
  $('cmd-comment').value = '';
  $('cmd-error').textContent = '';
  $('cmd-dlg').showModal();
  $('cmd-comment').focus();
}

async function submitCommand(ev) {
  ev.preventDefault();
  const c = st.cmd;
  if (!c) return;
  const body = { comment: $('cmd-comment').value.trim() };
  const sentAt = st.alarmTick;
  if (c.action === 'shelve') {
    const d = $('cmd-duration').value;
    if (d === 'one_shot') body.one_shot = true; // until the alarm returns
    else body.duration = d;
  }
  // Empty: until returned to service (refused for an interlock input).
  if (c.action === 'out_of_service' && $('cmd-oos-duration').value) body.duration = $('cmd-oos-duration').value;
  $('cmd-ok').disabled = true;
  try {
    const res = await fetch(`/api/v1/alarms/${encodeURIComponent(c.alarm)}/${c.action}`, {
      method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify(body),
    });
    const out = await res.json().catch(() => ({}));
    if (res.status === 401) { $('cmd-dlg').close(); authExpired(); return; }
    if (!res.ok) { $('cmd-error').textContent = out.error || `failed (${res.status})`; return; }
    if (out.alarm || c.action !== 'shelve') onCommandAnswer(c.alarm, out.alarm, sentAt);
    $('cmd-dlg').close();
  } catch (e) {
    $('cmd-error').textContent = 'failed: ' + e.message;
  } finally {
    $('cmd-ok').disabled = false;
  }
}

function closeCommand() {
  // The close event comes in a task of its own, after the dialog closed: a
  // command opened again before it (Escape, then Ack at once) is open now
  // and must keep its st.cmd, or its OK would send nothing.
  if ($('cmd-dlg').open) return;
  const c = st.cmd;
  st.cmd = null;
  if (c && c.opener && document.contains(c.opener)) c.opener.focus();
  else if (c) {
    // The row was redrawn while the dialog was open: focus its new button.
    const b = document.querySelector(`button[data-alarm="${CSS.escape(c.alarm)}"][data-action="${c.action}"]`) ||
      document.querySelector(`button[data-alarm="${CSS.escape(c.alarm)}"]`);
    if (b) b.focus();
  }
}

// ---- start -----------------------------------------------------------------------

async function start() {
  loadAuth();
  $('login-btn').addEventListener('click', () => openLogin(''));
  $('logout-btn').addEventListener('click', logout);
  $('login-form').addEventListener('submit', doLogin);
  $('login-cancel').addEventListener('click', () => $('login-dlg').close());
  $('cmd-form').addEventListener('submit', submitCommand);
  $('cmd-cancel').addEventListener('click', () => $('cmd-dlg').close());
  $('cmd-dlg').addEventListener('close', closeCommand);
  for (const b of document.querySelectorAll('[data-sort]')) {
    b.addEventListener('click', () => {
      st.sort = b.dataset.sort;
      for (const o of document.querySelectorAll('[data-sort]')) o.setAttribute('aria-pressed', String(o === b));
      renderAlarms();
    });
  }
  try { st.info = await getJSON('/api/v1/info'); } catch (_) { /* keep defaults */ }
  renderAll();
  if (st.auth) {
    // A token from an earlier tab may have expired: ask once.
    const res = await fetch('/api/v1/session', { headers: headers() }).catch(() => null);
    if (res && res.status === 401) authExpired();
  } else if (st.info.anonymous === 'none') {
    openLogin('');
  }
  // Ages and stale marks move even when no data arrives.
  setInterval(() => { for (const k of st.readings.keys()) updateSensor(k); renderFlood(); }, 1000);
  setInterval(() => { if (st.trend) renderTrend(); }, 5000);
  streamLoop();
}

document.addEventListener('DOMContentLoaded', start);
