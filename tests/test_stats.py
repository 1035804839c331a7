"Replicate-level statistics of the installed package, against scipy, an exact power integral and a known null."
import numpy as np, pandas as pd, pytest
from scipy import integrate, stats as sps
from tokenclean.core import TokencleanError
from tokenclean.stats import (_t_stats, check_distinct, cluster_bootstrap, compare, comparison_table, exact_power, mde,
                              paired, simulate_null, verdict)


def _power_quadrature(ncp, df, level=0.95):
    "Power of the two-sided t test as an integral over the chi-square distribution of the variance estimate."
    c = sps.t.ppf((1 + level)/2, df)
    f = lambda v: sps.chi2.pdf(v, df) * (sps.norm.sf(c*np.sqrt(v/df) - ncp) + sps.norm.cdf(-c*np.sqrt(v/df) - ncp))
    return integrate.quad(f, 0, np.inf, epsabs=1e-12, limit=200)[0]


@pytest.mark.parametrize('df', [1, 2, 3, 6])
def test_mde_has_the_power_it_claims(df):
    assert abs(_power_quadrature(mde(1.0, df), df) - 0.8) < 1e-6
    assert abs(exact_power(3.0, 1.0, df) - _power_quadrature(3.0, df)) < 1e-6


def test_mde_evidence_facts():
    got = [round(mde(1/np.sqrt(n), df=n - 1), 2) for n in (3, 4, 5)]
    assert got == [3.26, 2.13, 1.68]


def _long(effects:dict, seeds=(1, 2, 3), items=200, seed_sd=0.02, seed=0):
    g = np.random.default_rng(seed)
    base = g.normal(2, 0.5, items)
    return pd.DataFrame([dict(experiment='e', arm=a, seed=s, item=i, cluster=i % 10, metric='nll', value=v)
                         for a, eff in effects.items() for s in seeds
                         for i, v in enumerate(base + eff + g.normal(0, seed_sd) + g.normal(0, 0.3, items))])


def test_p_value_is_scipy_ttest_rel():
    long = _long({'full': 0.0, 'fixed': -0.05}, seed_sd=0.05)
    t = comparison_table(long, [('fixed', 'full')], ['nll'], ['nll'])
    means = long.groupby(['arm', 'seed']).value.mean()
    ref = sps.ttest_rel(means['fixed'], means['full'])
    assert abs(t.p[0] - ref.pvalue) < 1e-9 and t.df[0] == 2 and t.clusters[0] == 10


def test_verdicts_with_known_answers():
    long = _long({'full': 0.0, 'fixed': -0.3, 'random': 0.0})
    t = comparison_table(long, [('fixed', 'full'), ('random', 'full')], ['nll'], ['nll'])
    assert list(t.verdict) == ['better', 'no detectable difference']
    one = comparison_table(long[long.seed == 1], [('fixed', 'full')], ['nll'], ['nll'])
    assert one.verdict[0] == 'one replicate: no verdict' and np.isnan(one.lo[0]) and one.cluster_hi[0] < 0
    assert verdict(compare(np.full((3, 5), 0.0))) == 'cannot resolve: no item differs'


def test_duplicates_refused():
    long = _long({'full': 0.0, 'fixed': -0.3})
    with pytest.raises(TokencleanError, match='duplicated rows'):
        paired(pd.concat([long, long.iloc[:3]]), 'nll', 'fixed', 'full')
    with pytest.raises(TokencleanError, match='with itself'): paired(long, 'nll', 'fixed', 'fixed')
    with pytest.raises(TokencleanError, match='twice'): check_distinct([42, 42], 'seeds')
    with pytest.raises(TokencleanError, match='twice'):
        comparison_table(long, [('fixed', 'full'), ('fixed', 'full')], ['nll'])


def test_null_coverage():
    "No true effect, seed SD 0.3 × item SD, 12 clusters: the replicate-level 95% CI covers zero in 93-97%."
    d, keys = simulate_null(n_sims=4000, seed=1)
    t = _t_stats(d.mean(2))
    covered = np.mean((t['lo'] <= 0) & (t['hi'] >= 0))
    assert 0.93 <= covered <= 0.97, covered
    old = [cluster_bootstrap(x, n_boot=500) for x in d[:300]]           # the item-level interval of the old verdict
    assert np.mean([r.lo <= 0 <= r.hi for r in old]) < 0.5
