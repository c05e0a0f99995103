// Keeps the latest run in IndexedDB: its finished items while it runs, then its report,
// so a reload or a closed tab loses nothing finished. One record, replaced by each run.
const DATABASE = 'seedling-results';
const STORE = 'runs';
const LATEST = 'latest';

let opened;

function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error('the results database is open in an older tab; close it'));
  });
  return opened;
}

async function transact(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const request = work(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error ?? request.error);
    transaction.onabort = () => reject(transaction.error ?? new Error('the browser aborted the save'));
  });
}

// Saves `record` as the latest run. Rejects with the browser's error (QuotaExceededError
// when storage is full); the caller warns and carries on.
export const saveLatest = (record) => transact('readwrite', (store) => store.put(record, LATEST));

// The latest run saved, or undefined.
export const loadLatest = () => transact('readonly', (store) => store.get(LATEST));

export const clearLatest = () => transact('readwrite', (store) => store.delete(LATEST));
