"Build script: everything comes from settings.ini (the nbdev 2 layout)."
import shlex
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']
py_versions = '3.10 3.11 3.12 3.13'.split()
lic = licenses[cfg['license']]
min_python = cfg['min_python']
reqs = shlex.split(cfg.get('requirements', ''))
dev_reqs = shlex.split(cfg.get('dev_requirements', ''))
scripts = [s.strip() for s in cfg.get('console_scripts', '').split('\n') if s.strip()]
readme = Path(__file__).parent/'README.md'
# The presets (`tokenclean config --list`) go to <prefix>/share/tokenclean/configs, where `config.preset_dirs` looks.
here = Path(__file__).parent
configs = sorted({p.parent for p in (here/'configs').rglob('*.yaml')})
data_files = [(str(Path('share/tokenclean')/d.relative_to(here)),
               [str(p.relative_to(here)) for p in sorted(d.glob('*.yaml'))]) for d in configs]

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    license=lic[0], author=cfg['author'], author_email=cfg['author_email'],
    keywords=cfg['keywords'].split(), url=cfg['git_url'],
    classifiers=[f"Development Status :: {statuses[int(cfg['status'])]}",
                 f"Intended Audience :: {cfg['audience']}",
                 f"License :: {lic[1]}", 'Natural Language :: English'] +
                [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True, install_requires=reqs, extras_require={'dev': dev_reqs},
    python_requires='>=' + min_python, zip_safe=False, data_files=data_files,
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else '',
    long_description_content_type='text/markdown',
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
