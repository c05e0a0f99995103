// Every visible string of the page, in English and French. The page follows the
// browser's language, and the selector switches it.
export const messages = {
  en: {
    title: 'Seedling',
    tagline: 'Is a small language model running on your own device good enough, and how much energy does it use compared with a hosted LLM?',
    language: 'Language',
    setup: 'Run',
    limit: 'Items per task',
    maxNewTokens: 'Max new tokens',
    run: 'Run',
    cancel: 'Cancel',
    downloads: 'Model downloads',
    gsm8kHeading: 'Arithmetic word problems (GSM8K) with SmolLM2-135M-Instruct',
    gsm8kExplain: 'The small chat model reasons step by step; an answer counts when its final number equals the reference.',
    embedHeading: 'Sentence embeddings (UCI reviews) with all-MiniLM-L6-v2',
    embedExplain: 'The encoder turns each review into 384 numbers that capture its meaning; these feed the classification tasks.',
    energyHeading: 'Energy and carbon',
    colItem: 'Item', colQuestion: 'Question', colOutput: 'Model output', colPredicted: 'Predicted',
    colReference: 'Reference', colCorrect: 'Correct', colLatency: 'Latency', colTokensPerSecond: 'Tokens/s',
    colSentence: 'Sentence', colTokens: 'Tokens', colVector: 'First values',
    yes: 'yes', no: 'no',
    statusIdle: 'Ready.',
    statusLoadingEngine: 'Starting the engine…',
    statusDownloading: 'Downloading and verifying model files…',
    statusLoadingModel: 'Loading {model}…',
    statusRunning: 'Running {task}: {done} of {total} done, about {left} left.',
    statusDone: 'Done in {seconds} s.',
    statusCancelled: 'Cancelled. Finished items are kept.',
    fromCache: 'from the browser cache, verified',
    downloaded: '{loaded} of {total} MB at {rate} MB/s',
    verified: 'SHA-256 verified',
    cacheFull: 'Browser storage is full: the model works but will be downloaded again next time.',
    errorPrefix: 'Error: ',
    score_gsm8k: 'GSM8K exact match: {correct} of {total} ({percent} %, 95 % interval {low}–{high} %)',
    score_sentiment: 'Sentiment accuracy: {correct} of {total} ({percent} %, 95 % interval {low}–{high} %)',
    sentimentHeading: 'Review sentiment (UCI) with all-MiniLM-L6-v2 and a trained head',
    sentimentExplain: 'A small classifier trained on other reviews reads each embedding and says positive or negative. Only reviews it never saw in training are scored.',
    label_positive: 'positive', label_negative: 'negative',
    energyPerItem: 'Device energy per item: {wh} Wh (band {low}–{high} Wh), {g} gCO2e at {grid} gCO2e/kWh ({gridName}, {gridSource}).',
    energyProfile: 'Power profile: {profile} — {derivation}',
    energyMarginal: 'Marginal energy (above idle) per item: {wh} Wh.',
    hostedReference: '{label} ({provider}, {published}): {wh} Wh per prompt, {ratio}× this device’s energy per item.',
    hostedNote: 'No hosted LLM is configured: published per-prompt figures are shown instead of a live measurement.',
    licences: 'Models: all-MiniLM-L6-v2 (Apache-2.0), SmolLM2-135M-Instruct (Apache-2.0). Data: GSM8K (MIT), UCI Sentiment Labelled Sentences (CC BY 4.0). Grid intensity: Ember via CO2.js (CC BY-SA 4.0).',
  },
  fr: {
    title: 'Seedling',
    tagline: 'Un petit modèle de langue qui tourne sur votre propre appareil suffit-il, et combien d’énergie consomme-t-il par rapport à un grand modèle hébergé ?',
    language: 'Langue',
    setup: 'Lancer',
    limit: 'Éléments par tâche',
    maxNewTokens: 'Jetons générés au maximum',
    run: 'Lancer',
    cancel: 'Annuler',
    downloads: 'Téléchargement des modèles',
    gsm8kHeading: 'Problèmes d’arithmétique (GSM8K) avec SmolLM2-135M-Instruct',
    gsm8kExplain: 'Le petit modèle raisonne pas à pas ; une réponse compte si son nombre final est égal à la référence.',
    embedHeading: 'Plongements de phrases (avis UCI) avec all-MiniLM-L6-v2',
    embedExplain: 'L’encodeur transforme chaque avis en 384 nombres qui en résument le sens ; ils servent aux tâches de classification.',
    energyHeading: 'Énergie et carbone',
    colItem: 'Élément', colQuestion: 'Question', colOutput: 'Réponse du modèle', colPredicted: 'Prédit',
    colReference: 'Référence', colCorrect: 'Juste', colLatency: 'Latence', colTokensPerSecond: 'Jetons/s',
    colSentence: 'Phrase', colTokens: 'Jetons', colVector: 'Premières valeurs',
    yes: 'oui', no: 'non',
    statusIdle: 'Prêt.',
    statusLoadingEngine: 'Démarrage du moteur…',
    statusDownloading: 'Téléchargement et vérification des fichiers des modèles…',
    statusLoadingModel: 'Chargement de {model}…',
    statusRunning: '{task} en cours : {done} sur {total} terminés, encore environ {left}.',
    statusDone: 'Terminé en {seconds} s.',
    statusCancelled: 'Annulé. Les éléments terminés sont conservés.',
    fromCache: 'depuis le cache du navigateur, vérifié',
    downloaded: '{loaded} sur {total} Mo à {rate} Mo/s',
    verified: 'SHA-256 vérifié',
    cacheFull: 'Le stockage du navigateur est plein : le modèle fonctionne mais sera retéléchargé la prochaine fois.',
    errorPrefix: 'Erreur : ',
    score_gsm8k: 'GSM8K, réponses exactes : {correct} sur {total} ({percent} %, intervalle à 95 % {low}–{high} %)',
    score_sentiment: 'Sentiment, exactitude : {correct} sur {total} ({percent} %, intervalle à 95 % {low}–{high} %)',
    sentimentHeading: 'Sentiment des avis (UCI) avec all-MiniLM-L6-v2 et une tête entraînée',
    sentimentExplain: 'Un petit classifieur entraîné sur d’autres avis lit chaque plongement et répond positif ou négatif. Seuls les avis jamais vus à l’entraînement sont notés.',
    label_positive: 'positif', label_negative: 'négatif',
    energyPerItem: 'Énergie de l’appareil par élément : {wh} Wh (fourchette {low}–{high} Wh), {g} gCO2e à {grid} gCO2e/kWh ({gridName}, {gridSource}).',
    energyProfile: 'Profil de puissance : {profile} — {derivation}',
    energyMarginal: 'Énergie marginale (au-delà du repos) par élément : {wh} Wh.',
    hostedReference: '{label} ({provider}, {published}) : {wh} Wh par requête, {ratio} fois l’énergie par élément de cet appareil.',
    hostedNote: 'Aucun grand modèle hébergé n’est configuré : les chiffres publiés par requête sont affichés à la place d’une mesure en direct.',
    licences: 'Modèles : all-MiniLM-L6-v2 (Apache-2.0), SmolLM2-135M-Instruct (Apache-2.0). Données : GSM8K (MIT), UCI Sentiment Labelled Sentences (CC BY 4.0). Intensité carbone : Ember via CO2.js (CC BY-SA 4.0).',
  },
};

export function pickLanguage(requested) {
  const candidates = [requested, ...(navigator.languages || [navigator.language])];
  for (const candidate of candidates) {
    const base = (candidate || '').slice(0, 2).toLowerCase();
    if (base in messages) return base;
  }
  return 'en';
}

export function translate(language, key, values = {}) {
  const template = messages[language][key] ?? messages.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}
