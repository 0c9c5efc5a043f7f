-- The medical platform as a MySQL/MariaDB team would write it: AUTO_INCREMENT,
-- DATETIME, JSON, ENUM, DECIMAL, DATE.
CREATE TABLE clinical_trials (
    trial_id VARCHAR(32) PRIMARY KEY, title TEXT NOT NULL, trial_phase VARCHAR(32) NOT NULL,
    trial_status VARCHAR(64) NOT NULL, enrollment_count INT NOT NULL,
    primary_outcomes JSON NOT NULL, secondary_outcomes JSON NOT NULL,
    start_date DATE NOT NULL, last_updated DATE NOT NULL) ENGINE=InnoDB;
CREATE TABLE papers (
    id INT AUTO_INCREMENT PRIMARY KEY, doi VARCHAR(128) NOT NULL UNIQUE, title TEXT NOT NULL,
    abstract TEXT, authors JSON NOT NULL, keywords JSON NOT NULL, journal VARCHAR(255) NOT NULL,
    publication_date DATE NOT NULL, publication_type VARCHAR(64) NOT NULL,
    publication_stage VARCHAR(32) NOT NULL, medical_specialty VARCHAR(128) NOT NULL,
    study_design VARCHAR(128) NOT NULL,
    evidence_level ENUM('high', 'moderate', 'low', 'very_low') NOT NULL,
    citation_count INT NOT NULL DEFAULT 0, clinical_trial_id VARCHAR(32) NULL,
    conditions JSON NOT NULL, key_findings TEXT, embedding_vector JSON,
    FOREIGN KEY (clinical_trial_id) REFERENCES clinical_trials (trial_id)) ENGINE=InnoDB;
CREATE TABLE citations (
    id INT AUTO_INCREMENT PRIMARY KEY, citing_paper_id INT NOT NULL, cited_paper_id INT NOT NULL,
    context VARCHAR(64), UNIQUE (citing_paper_id, cited_paper_id),
    FOREIGN KEY (citing_paper_id) REFERENCES papers (id),
    FOREIGN KEY (cited_paper_id) REFERENCES papers (id)) ENGINE=InnoDB;
CREATE TABLE users (
    id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL, institution VARCHAR(255) NOT NULL, role VARCHAR(64) NOT NULL,
    medical_specialty VARCHAR(128) NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;
CREATE TABLE reading_history (
    id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL, paper_id INT NOT NULL,
    last_read_at DATETIME NOT NULL,
    read_percentage DECIMAL(5, 2) NOT NULL CHECK (read_percentage BETWEEN 0 AND 100),
    FOREIGN KEY (user_id) REFERENCES users (id),
    FOREIGN KEY (paper_id) REFERENCES papers (id)) ENGINE=InnoDB;
CREATE TABLE paper_reviews (
    id INT AUTO_INCREMENT PRIMARY KEY, paper_id INT NOT NULL, user_id INT NOT NULL,
    rating TINYINT NOT NULL CHECK (rating BETWEEN 1 AND 5), review_text TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    FOREIGN KEY (paper_id) REFERENCES papers (id),
    FOREIGN KEY (user_id) REFERENCES users (id)) ENGINE=InnoDB;
CREATE TABLE corpus_meta (`key` VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL) ENGINE=InnoDB;
CREATE INDEX idx_papers_specialty_date ON papers (medical_specialty, publication_date);
